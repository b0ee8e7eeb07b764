"""tools/gpu_check.sh in its no-GPU mode: the steps that need no GPU run, the report (JSON and
markdown) says what was skipped and why."""
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "tools/gpu_check.sh")
GPU_TESTS = {f"test_cuda_bf16_step_and_evaluation_at_world_size_1[{s}]"
             for s in ("ddp", "fsdp", "deepspeed")} | {
    "test_fused_matches_reference_mona_in_bf16[False]",
    "test_fused_matches_reference_mona_in_bf16[True]",
    "test_fused_matches_reference_swin_in_bf16", "test_one_host_sync_per_training_step"}


def gpu_check(tmp_path, *args, **env_vars):
    env = {k: v for k, v in os.environ.items() if k != "OUT"}
    env.update(GPU_CHECK_PYTHON=sys.executable, GPU_CHECK_OUT=str(tmp_path / "out"),
               CUDA_VISIBLE_DEVICES="", MONA_DATASETS=str(tmp_path / "data"),
               OMP_NUM_THREADS="2", **env_vars)
    return subprocess.run(["bash", SCRIPT, *args], env=env, capture_output=True, text=True,
                          timeout=600)


@pytest.mark.slow
def test_no_gpu_mode_runs_what_needs_no_gpu_and_reports_the_rest(tmp_path):
    # two of the four variants keep CI fast (each builds and steps its own detector)
    result = gpu_check(tmp_path, GPU_CHECK_BENCH_ARGS="--variants fixed mona")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = tmp_path / "out"
    report = json.loads((out / "gpu_check.json").read_text())
    assert report["cuda_available"] is False and report["gpu"] is None and report["ok"]
    steps = {s["step"]: s for s in report["steps"]}
    assert list(steps) == ["install", "gpu tests", "benchmark (GPU)", "benchmark --cpu-smoke"]
    assert steps["install"]["status"] == "skipped"
    assert "already imports every dependency" in steps["install"]["detail"]
    assert steps["gpu tests"]["status"] == "ok"
    assert steps["benchmark (GPU)"]["status"] == "skipped"
    assert "no CUDA device" in steps["benchmark (GPU)"]["detail"]
    assert steps["benchmark --cpu-smoke"]["status"] == "ok"
    # every gpu test was collected and skipped for want of CUDA
    assert {t["test"] for t in report["tests"]} == GPU_TESTS
    assert all(t["outcome"] == "skipped" and "CUDA" in t["detail"] for t in report["tests"])
    assert {s["what"] for s in report["skipped"]} >= {"benchmark (GPU)", "install"}
    # the CPU smoke benchmark: the variants asked for, ratios against mona, the adapter rows
    bench = report["benchmark"]
    assert bench["smoke"] is True
    rows = {r["variant"]: r for r in bench["training_step"]}
    assert list(rows) == ["fixed", "mona"]
    assert rows["mona"]["time vs mona"] == 1.0
    assert rows["fixed"]["trainable"] < rows["mona"]["trainable"]
    assert all(r["s/iter"] > 0 and r["peak GiB"] is None for r in rows.values())
    assert {(r["path"], r["pass"]) for r in bench["adapter"]} == {
        (p, s) for p in ("fused", "reference") for s in ("forward", "forward+backward")}
    assert all(r["x floor"] > 0 for r in bench["adapter"])
    assert json.loads((out / "bench_gpu.json").read_text()) == bench
    markdown = (out / "gpu_check.md").read_text()
    assert "no GPU" in markdown and "all passed" in markdown
    assert "| benchmark (GPU) | skipped | 0 | no CUDA device" in markdown
    assert "| fixed |" in markdown and "| fused | forward+backward |" in markdown
    assert "Skipped:" in markdown and "step benchmark (GPU): skipped" in result.stdout
    assert (out / "pytest_gpu.xml").is_file() and (out / "gpu_check.log").is_file()


@pytest.mark.slow
def test_missing_bundle_is_an_error_that_says_how_to_make_it(tmp_path):
    result = gpu_check(tmp_path, GPU_CHECK_INSTALL="1",
                       GPU_CHECK_BUNDLE=str(tmp_path / "no_bundle"))
    assert result.returncode != 0
    report = json.loads((tmp_path / "out" / "gpu_check.json").read_text())
    assert not report["ok"]
    assert [s["step"] for s in report["steps"]] == ["install"]
    assert report["steps"][0]["status"] == "failed"
    assert "--prepare" in report["steps"][0]["detail"]


def test_unknown_option_fails(tmp_path):
    result = gpu_check(tmp_path, "--prepair")
    assert result.returncode != 0 and "--prepair" in result.stderr
