"""Both new task families through the real workflow: a tiny ``projects/train_net.py`` run per
task (evaluation keys in metrics.json) and one optimizer step per (task, tuning method)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

from mona_scale.backbones import SwinTransformer
from mona_scale.engine.config import load_config
from mona_scale.launch import find_free_port

import pytest
import torch
from helpers.tuning_methods import METHOD_PARTS as TRAINED_PART  # names each method trains
from helpers.tuning_methods import one_sgd_step

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY_DATA = ["dataloader.train.num_workers=0", "dataloader.test.num_workers=0",
             "dataloader.train.total_batch_size=2", "train.wandb.enabled=False",
             "model.backbone.drop_path_rate=0.0"]
TASKS = {
    "semseg": ("configs/quickstart/shapes_upernet_mona.py", [
        *TINY_DATA, "dataloader.train.dataset.num_images=6", "dataloader.test.dataset.num_images=3",
        "dataloader.train.mapper.augmentations.1.crop_size=[64,64]"]),
    "cls": ("configs/quickstart/shapes_cls_mona.py", [
        *TINY_DATA, "dataloader.train.dataset.num_images=6",
        "dataloader.test.dataset.num_images=6"]),
}
HEADS = {"semseg": "decode_head.predictor.weight", "cls": "head.weight"}


def read_metrics(out) -> list[dict]:
    with open(os.path.join(out, "metrics.json")) as f:
        return [json.loads(line) for line in f]


def train_net(tmp_path, task: str, *overrides: str, nproc: int = 1) -> None:
    """Run projects/train_net.py on ``task``'s quickstart with tiny data (torchrun if
    ``nproc`` > 1)."""
    config, tiny = TASKS[task]
    launcher = [sys.executable]
    if nproc > 1:
        launcher += ["-m", "torch.distributed.run", f"--nproc_per_node={nproc}",
                     f"--master_port={find_free_port()}"]
    env = dict(os.environ, MONA_DATASETS=str(tmp_path / "data"), OMP_NUM_THREADS="1")
    flags = [a for a in overrides if "=" not in a]  # e.g. --resume, before the overrides
    result = subprocess.run(
        [*launcher, os.path.join(ROOT, "projects/train_net.py"), *flags, "--config-file",
         os.path.join(ROOT, config), *tiny, "train.log_period=1",
         *[a for a in overrides if "=" in a]],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]


RUN = ["train.max_iter=5", "train.checkpointer.period=100"]


@pytest.fixture(scope="module")
def semseg_run(tmp_path_factory):
    """A 5-iteration segmentation run (shared by the evaluation and the resume tests)."""
    tmp = tmp_path_factory.mktemp("semseg")
    train_net(tmp, "semseg", *RUN, f"train.output_dir={tmp / 'full'}")
    return tmp


def check_run(out, keys) -> None:
    records = read_metrics(out)
    assert [r["iteration"] for r in records if "total_loss" in r] == [0, 1, 2, 3, 4]
    for key in keys:
        assert 0.0 <= records[-1][key] <= 100.0, key
    assert (out / "model_final.pth").is_file()


@pytest.mark.slow
def test_train_net_trains_and_evaluates_semseg(semseg_run):
    check_run(semseg_run / "full", ["sem_seg/mIoU", "sem_seg/fwIoU", "sem_seg/mACC",
                                    "sem_seg/pACC"])


@pytest.mark.slow
def test_train_net_trains_and_evaluates_classification(tmp_path):
    train_net(tmp_path, "cls", *RUN, f"train.output_dir={tmp_path / 'run'}")
    check_run(tmp_path / "run", ["classification/top1"])


@pytest.mark.slow
def test_semseg_resume_continues_the_same_run_exactly(semseg_run):
    """Stopped after iteration 2 and resumed, the segmentation run (random resize, crop,
    flip, photometric distortion, dropout) logs the same losses as an uninterrupted one."""
    part = semseg_run / "part"
    train_net(semseg_run, "semseg", *RUN, "train.stop_at_iter=2", f"train.output_dir={part}")
    train_net(semseg_run, "semseg", "--resume", *RUN, f"train.output_dir={part}")
    losses = {run: [(r["iteration"], r["loss_sem_seg"], r["loss_aux"])
                    for r in read_metrics(semseg_run / run) if "total_loss" in r]
              for run in ("full", "part")}
    assert [i for i, *_ in losses["part"]] == [0, 1, 2, 3, 4]
    assert losses["part"] == losses["full"]


@pytest.mark.slow
def test_upernet_with_syncbn_on_two_gloo_processes(tmp_path):
    """SyncBN heads train under DDP on CPU (NaiveSyncBatchNorm) and both ranks' predictions
    reach the SemSegEvaluator."""
    out = tmp_path / "ddp"
    train_net(tmp_path, "semseg", "train.max_iter=2", "dataloader.train.total_batch_size=4",
              f"train.output_dir={out}", nproc=2)
    assert [r["iteration"] for r in read_metrics(out) if "total_loss" in r] == [0, 1]
    assert "process 1 of 2" in (out / "log.txt.rank1").read_text()
    assert 0.0 <= read_metrics(out)[-1]["sem_seg/mIoU"] <= 100.0


@pytest.mark.slow
@pytest.mark.parametrize("task", sorted(TASKS))
@pytest.mark.parametrize("method", sorted(TRAINED_PART))
def test_every_tuning_method_steps(tmp_path, monkeypatch, task, method):
    monkeypatch.setenv("MONA_DATASETS", str(tmp_path))
    config, overrides = TASKS[task]
    cfg = load_config(os.path.join(ROOT, config), [*overrides, f"tuning.method={method}",
                                                   f"train.output_dir={tmp_path}"])
    model, before = one_sgd_step(cfg)
    part, changed_in_backbone = TRAINED_PART[method], 0
    for name, param in model.named_parameters():
        changed = not torch.equal(param, before[name])
        if name.startswith("backbone."):
            trains = part is not None and part in name[len("backbone."):]
            assert param.requires_grad == trains, name
            if trains:
                changed_in_backbone += changed
            else:  # frozen: bit-identical, no gradient buffer
                assert not changed and param.grad is None, name
        else:  # heads always train
            assert param.requires_grad, name
    assert not torch.equal(dict(model.named_parameters())[HEADS[task]], before[HEADS[task]])
    assert (changed_in_backbone > 0) == (method != "fixed")
    backbone = next(m for m in model.modules() if isinstance(m, SwinTransformer))
    assert any(p.requires_grad for p in backbone.parameters()) == (method != "fixed")

