"""The demo pipeline (make demo) end to end: with ``--schedule smoke`` every stage and output
exists (CI); the full quickstart's Mona run beats its fixed run (``make test-demo``, not CI:
15-25 minutes on 2 cores)."""
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_quickstart(tmp_path, *args: str, timeout: int) -> subprocess.CompletedProcess:
    """projects/quickstart.py with its Mona and fixed stage-2 runs in parallel, data and
    outputs under ``tmp_path``."""
    env = dict(os.environ, MONA_DATASETS=str(tmp_path / "data"), OMP_NUM_THREADS="1")
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "projects/quickstart.py"), "--parallel",
         "--compare-fixed", "--output", str(tmp_path / "demo"), *args],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def last_record(run_dir) -> dict:
    return json.loads((run_dir / "metrics.json").read_text().splitlines()[-1])


@pytest.mark.slow
def test_quickstart_smoke(tmp_path):
    result = run_quickstart(tmp_path, "--schedule", "smoke", timeout=600)
    out = tmp_path / "demo"
    assert (out / "pretrain" / "swin_tiny_microsoft.pth").is_file()
    for run in ("cascade_mona", "cascade_fixed"):
        assert (out / run / "metrics.json").is_file()
        assert (out / run / "model_final.pth").is_file()
    pictures = sorted(os.listdir(out / "cascade_mona" / "predictions"))
    assert pictures == ["000000.png", "000001.png", "000002.png", "000003.png"]
    log = (out / "cascade_mona" / "log.txt").read_text()
    assert "loaded" in log and "microsoft layout" in log  # the exported pretrain loaded
    assert "stage 2  cascade mask r-cnn, mona" in result.stdout
    assert "stage 2  cascade mask r-cnn, fixed" in result.stdout


@pytest.mark.demo
def test_quickstart_mona_beats_fixed(tmp_path):
    """The README's quickstart claim. Measured (seed 0): stage-1 top-1 51.3 % (3 classes,
    chance 33.3 %); box AP Mona 44.0, fixed 29.8. Shortened schedules do not separate the
    methods (stage 1 stays at chance for 200+ iterations; stage 2 is level at 100), so this
    runs the demo's own schedule."""
    run_quickstart(tmp_path, timeout=3600)
    out = tmp_path / "demo"
    top1 = last_record(out / "pretrain")["classification/top1"]
    mona, fixed = (last_record(out / f"cascade_{m}")["bbox/AP"] for m in ("mona", "fixed"))
    assert top1 > 43.0, f"stage 1 learned too little: top-1 {top1:.1f} % (chance 33.3 %)"
    assert mona > fixed + 7.0, f"Mona box AP {mona:.1f} does not beat fixed {fixed:.1f} by 7"
