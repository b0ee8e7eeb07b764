"""The commands a new user runs first: a training run's console (no third-party noise, a
closing summary of where the results are), projects/demo.py on every quickstart task, the
exporter (missing output directories, the base model it records, adapter inference), flags
placed after the overrides, the SLURM scripts' argument order, and one thread per process
under ``--num-gpus N``."""
import importlib.util
import json
import os
import re
import subprocess
import sys
import textwrap

from mona_scale.engine.config import load_config
from mona_scale.engine.defaults import build_model

import numpy as np
import pytest
import torch
from helpers.train_net import CLS_CONFIG, CLS_TINY, CONFIG, ROOT, train_net
from PIL import Image

SEG_CONFIG = os.path.join(ROOT, "configs/quickstart/shapes_upernet_mona.py")
NOISE = ("pkg_resources is deprecated", "torch.meshgrid", "TypedStorage is deprecated",
         "NumPy array is not writable", "wandb: ", "Warning:")
SHAPES = {"circle", "square", "triangle"}


def load_project(name):
    """projects/<name>.py as a module."""
    spec = importlib.util.spec_from_file_location(
        f"project_{name}", os.path.join(ROOT, "projects", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --------------------------------------------------------------------- training console
@pytest.mark.slow
def test_training_console_has_our_lines_and_a_results_summary_without_noise(tmp_path):
    out = tmp_path / "run"
    env_mode = os.environ.get("WANDB_MODE")
    os.environ["WANDB_MODE"] = "offline"  # the run logs to wandb (offline) as by default
    try:
        result = train_net(tmp_path, *[o for o in CLS_TINY if "wandb" not in o],
                           "train.max_iter=2", f"train.output_dir={out}", config=CLS_CONFIG)
    finally:
        if env_mode is None:
            os.environ.pop("WANDB_MODE")
        else:
            os.environ["WANDB_MODE"] = env_mode
    console = result.stdout + result.stderr
    for noise in NOISE:
        assert noise not in console, (noise, console[-3000:])
    # detectron2's progress line (0-based iteration) with our CPU memory
    assert re.search(r"iter: 1 .*lr: .*cpu_mem: \d+M", result.stdout), result.stdout[-3000:]
    summary = result.stdout[result.stdout.index("results of this run in"):]
    assert f"{out}/metrics.json" in summary
    assert f"{out}/model_final.pth" in summary
    assert f"{out}/model_0000001 (last)" in summary
    sync = re.search(r"wandb sync (\S+)\)", summary)
    assert sync and os.path.isdir(sync.group(1)), summary
    assert os.path.dirname(sync.group(1)) == str(out / "wandb")
    # metrics.json: one line per log period (here every iteration) and the evaluation
    lines = (out / "metrics.json").read_text().splitlines()
    assert len(lines) == 3, lines


# ------------------------------------------------------------------------------- demo
@pytest.fixture(scope="module")
def demo_setup(tmp_path_factory):
    """Random-weight models of the three quickstart tasks saved as model_final.pth, a test
    image, and MONA_DATASETS in a scratch directory (the demo registers the class names)."""
    tmp = tmp_path_factory.mktemp("demo")
    old = os.environ.get("MONA_DATASETS")
    os.environ["MONA_DATASETS"] = str(tmp / "data")
    image = np.full((96, 96, 3), 40, np.uint8)
    image[20:70, 25:75] = (200, 60, 60)  # a square
    Image.fromarray(image).save(tmp / "input.png")
    weights = {}
    for name, config in (("detection", CONFIG), ("segmentation", SEG_CONFIG),
                         ("classification", CLS_CONFIG)):
        cfg = load_config(config, ["train.device=cpu"])
        path = tmp / f"{name}.pth"
        torch.save({"model": build_model(cfg).state_dict()}, path)
        weights[name] = path
    yield tmp, weights
    if old is None:
        os.environ.pop("MONA_DATASETS")
    else:
        os.environ["MONA_DATASETS"] = old


SMALL = {"detection": ["dataloader.test.mapper.augmentations.0.short_edge_length=64",
                       "dataloader.test.dataset.num_images=4"],
         "segmentation": ["dataloader.test.mapper.augmentations.0.short_edge_length=64",
                          "dataloader.test.dataset.num_images=4"],
         "classification": ["dataloader.test.dataset.num_images=4"]}
CONFIGS = {"detection": CONFIG, "segmentation": SEG_CONFIG, "classification": CLS_CONFIG}


@pytest.mark.slow
@pytest.mark.parametrize("task", ["detection", "segmentation", "classification"])
def test_demo_draws_every_quickstart_task_with_class_names(demo_setup, task, capsys):
    tmp, weights = demo_setup
    demo = load_project("demo")
    out = tmp / f"vis_{task}"
    assert demo.main(["--config-file", CONFIGS[task], "--weights", str(weights[task]),
                      "--input", str(tmp / "input.png"), "--output", str(out),
                      "--confidence", "0", *SMALL[task]]) == 0
    drawn = np.asarray(Image.open(out / "input.png").convert("RGB"))
    original = np.asarray(Image.open(tmp / "input.png").convert("RGB"))
    assert drawn.shape == original.shape
    assert (drawn != original).any()
    # the labels the Visualizer drew (matplotlib texts) carry class names, not ids
    predictor = demo.Predictor(CONFIGS[task], str(weights[task]), SMALL[task])
    texts = [t.get_text() for t in predictor.draw(original, confidence=0.0).ax.texts]
    names = {t.split()[0] for t in texts}
    assert texts and names <= SHAPES | {"background"}, texts
    assert names & SHAPES or task == "segmentation", texts
    if task == "classification":
        assert len(texts) == 3  # top-k of 3 classes, each with its probability
        assert all(re.fullmatch(r"\w+ \d+%", t) for t in texts), texts


# ----------------------------------------------------------------------------- export
def test_adapter_file_holds_trained_parameters_and_their_modules_persistent_buffers(tmp_path):
    from mona_scale.export import save_adapter

    from safetensors.torch import load_file
    from torch import nn

    class Head(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc, self.bn = nn.Linear(2, 2), nn.BatchNorm1d(2)
            self.gamma = nn.Parameter(torch.ones(2))
            self.register_buffer("scratch", torch.zeros(1), persistent=False)
            self.register_buffer("kept", torch.ones(1))

    model = nn.Sequential(nn.Linear(2, 2).requires_grad_(False), Head())
    written = save_adapter(model, model.state_dict(), str(tmp_path / "a.safetensors"),
                           {"base_model": "b.pth"})
    assert written == (tmp_path / "a.safetensors").stat().st_size
    assert sorted(load_file(tmp_path / "a.safetensors")) == [  # frozen 0.* left out
        "1.bn.bias", "1.bn.num_batches_tracked", "1.bn.running_mean", "1.bn.running_var",
        "1.bn.weight", "1.fc.bias", "1.fc.weight", "1.gamma", "1.kept"]  # not 1.scratch


def test_export_creates_directories_records_the_base_model_and_adapter_inference(demo_setup):
    tmp, weights = demo_setup
    from mona_scale.export import main as export

    # a run directory as train_net leaves it: config.yaml names the base model
    run = tmp / "run"
    run.mkdir()
    cfg = load_config(CONFIG, ["train.device=cpu"])
    base = tmp / "base.pth"
    torch.manual_seed(1)
    base_model = build_model(cfg)
    for p in base_model.parameters():
        p.data.normal_(0, 0.02)
    torch.save({"model": base_model.state_dict()}, base)
    (run / "config.yaml").write_text(f"train:\n  init_checkpoint: {base}\n")
    # what training changes: the adapter keys (trainable parameters, their modules' buffers)
    trainable = {n for n, p in base_model.named_parameters() if p.requires_grad}
    trained = {k: v + 0.5 if k in trainable else v.clone()
               for k, v in base_model.state_dict().items()}
    torch.save({"model": trained}, run / "model_final.pth")
    written = export(["--config-file", CONFIG, "--checkpoint", str(run / "model_final.pth"),
                      "--adapter", str(tmp / "out/a/mona.safetensors"),
                      "--full", str(tmp / "out/b/model.pth")])
    assert set(written) == {"adapter", "full"}
    from safetensors import safe_open
    with safe_open(str(tmp / "out/a/mona.safetensors"), framework="pt") as f:
        assert f.metadata()["base_model"] == str(base)
        assert json.loads(f.metadata()["tuning"])["method"] == "mona"
    # adapter inference: base model (named by the file) + adapter = the trained model
    demo = load_project("demo")
    predictor = demo.Predictor(CONFIG, None, SMALL["detection"],
                               adapter=str(tmp / "out/a/mona.safetensors"))
    state = predictor.model.state_dict()
    for key, value in trained.items():
        assert torch.equal(state[key], value), key


# ------------------------------------------------------------------------- flag order
def test_a_flag_after_the_overrides_says_to_put_flags_first():
    train_net_module = load_project("train_net")
    with pytest.raises(ValueError, match="put flags first"):
        train_net_module.cli(["--config-file", CLS_CONFIG, "train.max_iter=10", "--resume"])


@pytest.mark.slurm
@pytest.mark.slow
def test_slurm_script_passes_flags_before_overrides(tmp_path):
    from helpers.slurm_cluster import install_slurm, running_cluster

    reason = install_slurm()
    if reason:
        pytest.skip(reason)
    env = {"MONA_PYTHON": sys.executable, "MONA_DATASETS": str(tmp_path / "data"),
           "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline"}
    weights = tmp_path / "model_final.pth"
    torch.save({"model": build_model(load_config(CLS_CONFIG)).state_dict()}, weights)
    with running_cluster(tmp_path / "slurm") as cluster:
        job = cluster.sbatch(
            "-N1", "--ntasks-per-node=1", "--cpus-per-task=1", "--gpus-per-node=0",
            f"--chdir={tmp_path}", os.path.join(ROOT, "slurm", "cls.sh"),
            "--config-file", os.path.relpath(CLS_CONFIG, ROOT),
            "dataloader.test.dataset.num_images=4", "dataloader.test.num_workers=0",
            "train.wandb.enabled=False", f"train.init_checkpoint={weights}", "--eval-only",
            env=env, cwd=ROOT)
        state = cluster.wait(job, timeout=240)
    output = (tmp_path / f"mona-cls-{job}.out").read_text()
    assert state["JobState"] == "COMPLETED", output[-3000:]
    assert "results of this run in" in output, output[-3000:]  # evaluated and finished


# ----------------------------------------------------------------------------- threads
THREADS = textwrap.dedent("""
    import json, os, sys
    import torch
    from mona_scale.launch import launch

    def report(path):
        with open(f"{path}.{os.environ['RANK']}", "w") as f:
            json.dump({"threads": torch.get_num_threads(),
                       "omp": os.environ.get("OMP_NUM_THREADS")}, f)

    if __name__ == "__main__":
        launch(report, 2, args=(sys.argv[1],))
""")


@pytest.mark.slow
@pytest.mark.parametrize("user_threads", [None, "2"])
def test_num_gpus_on_cpu_sets_one_thread_per_process_unless_the_user_chose(tmp_path,
                                                                        user_threads):
    script = tmp_path / "threads.py"
    script.write_text(THREADS)
    env = {k: v for k, v in os.environ.items() if k not in (
        "OMP_NUM_THREADS", "RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")}
    if user_threads:
        env["OMP_NUM_THREADS"] = user_threads
    result = subprocess.run([sys.executable, str(script), str(tmp_path / "r")], env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    for rank in (0, 1):
        got = json.loads((tmp_path / f"r.{rank}").read_text())
        expected = int(user_threads or 1)
        assert got == {"threads": expected, "omp": str(expected)}, got
