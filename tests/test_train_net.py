"""projects/train_net.py end to end on a tiny Cascade Mask R-CNN (real detectron2 model,
synthetic data, CPU): training, metrics, evaluation, resume, overrides, tuning methods, DDP."""
import shutil

from mona_scale.backbones import SwinTransformer
from mona_scale.engine.config import load_config

import pytest
import torch
from helpers.train_net import CLS_CONFIG, CLS_TINY, CONFIG, TINY, copypaste, read_metrics, train_net
from helpers.tuning_methods import METHOD_PARTS, one_sgd_step


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("train")
    out = tmp / "run"
    # wandb offline: test_wandb_offline_run_logs_metrics reads its run file
    train_net(tmp, *TINY, "train.max_iter=12", "train.wandb.enabled=True",
              "train.wandb.mode=offline", f"train.output_dir={out}")
    return tmp, out


@pytest.mark.slow
def test_training_writes_config_metrics_and_checkpoints(trained):
    _, out = trained
    assert (out / "config.yaml").is_file()
    assert (out / "last_checkpoint").read_text() == "model_0000011"
    assert (out / "model_final.pth").is_file()  # consolidated weights
    records = read_metrics(out)
    losses = [r["total_loss"] for r in records if "total_loss" in r]
    assert len(losses) == 12
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3  # it learns
    final = records[-1]
    for key in ("bbox/AP", "bbox/AP50", "segm/AP"):
        assert key in final, key
    assert {"lr", "memory_mb", "time", "data_time"} <= set().union(*records)


@pytest.mark.slow
def test_eval_only_reproduces_the_final_metrics(trained):
    tmp, out = trained
    train_net(tmp, *TINY, "--eval-only", f"train.output_dir={tmp / 'eval'}",
              f"train.init_checkpoint={out / 'model_final.pth'}")
    trained_log, eval_log = (out / "log.txt").read_text(), (tmp / "eval" / "log.txt").read_text()
    assert "loaded the whole model" in eval_log
    for task in ("bbox", "segm"):
        assert copypaste(eval_log, task) == copypaste(trained_log, task)


@pytest.mark.slow
def test_wandb_offline_run_logs_metrics(trained):
    from helpers.wandb_records import read_run

    _, out = trained
    history, config, ids = read_run(out)
    steps = {row["_step"]: row for row in history}
    assert [s for s in steps if "total_loss" in steps[s]] == list(range(12))
    assert any("bbox/AP" in row for row in history)
    assert {"model", "train", "tuning"} <= config
    assert ids == [(out / "wandb_run_id").read_text()]


@pytest.mark.slow
def test_resume_continues_at_the_next_iteration_and_its_wandb_run(trained):
    from helpers.wandb_records import read_run

    tmp, trained_out = trained
    out = tmp / "resumed"  # a copy: the other tests read the 12-iteration run
    shutil.copytree(trained_out, out)
    run_id = (out / "wandb_run_id").read_text()
    train_net(tmp, *TINY, "--resume", "train.max_iter=15", "train.wandb.enabled=True",
              "train.wandb.mode=offline", f"train.output_dir={out}")
    iterations = [r["iteration"] for r in read_metrics(out) if "total_loss" in r]
    assert iterations == list(range(12)) + [12, 13, 14]
    assert "resuming at iteration 12" in (out / "log.txt").read_text()
    history, _, ids = read_run(out)
    assert ids == [run_id, run_id]  # the resumed job continued the same wandb run
    assert sorted(r["_step"] for r in history if "total_loss" in r) == list(range(15))


@pytest.mark.slow
def test_unknown_override_fails_naming_the_key(tmp_path):
    result = train_net(tmp_path, "train.max_iters=3", check=False)
    assert result.returncode != 0 and "train.max_iters" in result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("method", sorted(METHOD_PARTS))
def test_every_tuning_method_steps_on_the_detector(tmp_path, method, monkeypatch):
    monkeypatch.setenv("MONA_DATASETS", str(tmp_path))
    cfg = load_config(CONFIG, [*TINY, f"tuning.method={method}", "model.backbone.bottom_up."
                               "drop_path_rate=0.0", f"train.output_dir={tmp_path}"])
    model, before = one_sgd_step(cfg)
    backbone = next(m for m in model.modules() if isinstance(m, SwinTransformer))
    part = METHOD_PARTS[method]
    changed_trainable = 0
    for name, param in model.named_parameters():
        changed = not torch.equal(param, before[name])
        if name.startswith("backbone.bottom_up."):
            trains = part is not None and part in name[len("backbone.bottom_up."):]
            assert param.requires_grad == trains, name
            if not trains:  # frozen: bit-identical, no gradient buffer
                assert not changed and param.grad is None, name
            else:
                assert param.grad is not None, name
                changed_trainable += changed
        elif name.startswith("roi_heads.box_predictor"):
            assert changed, name
    assert (changed_trainable > 0) == (method != "fixed")
    assert any(p.requires_grad for p in backbone.parameters()) == (method != "fixed")


@pytest.mark.slow
def test_ddp_two_gloo_processes(tmp_path):
    out = tmp_path / "ddp"
    train_net(tmp_path, *TINY, "train.max_iter=3", "train.checkpointer.period=100",
              f"train.output_dir={out}", "dataloader.test.dataset.num_images=2", nproc=2)
    losses = [r for r in read_metrics(out) if "total_loss" in r]
    assert [r["iteration"] for r in losses] == [0, 1, 2]
    assert "process 1 of 2" in (out / "log.txt.rank1").read_text()
    assert "bbox/AP" in read_metrics(out)[-1]


@pytest.mark.slow
def test_num_gpus_spawns_local_workers(tmp_path):
    out = tmp_path / "spawn"
    train_net(tmp_path, "--num-gpus", "2", *TINY, "train.max_iter=2",
                       "train.checkpointer.period=100", f"train.output_dir={out}",
                       "dataloader.test.dataset.num_images=2")
    assert [r["iteration"] for r in read_metrics(out) if "total_loss" in r] == [0, 1]
    assert "process 1 of 2" in (out / "log.txt.rank1").read_text()
    assert "bbox/AP" in read_metrics(out)[-1]


def test_wandb_mode(monkeypatch):
    from mona_scale.engine.wandb_writer import wandb_mode
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    assert wandb_mode("auto") == "offline"
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert wandb_mode("auto") == "online"
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert wandb_mode("online") == "disabled"
    with pytest.raises(ValueError, match="train.wandb.mode='cloud'"):
        wandb_mode("cloud")


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["ddp", "fsdp", "deepspeed"])
def test_every_strategy_runs_in_one_process_without_a_launcher(tmp_path, strategy):
    out = tmp_path / strategy
    train_net(tmp_path, *CLS_TINY, f"train.strategy={strategy}", "train.max_iter=2",
              f"train.output_dir={out}", config=CLS_CONFIG)
    assert [r["iteration"] for r in read_metrics(out) if "total_loss" in r] == [0, 1]
    assert "process 0 of 1" in (out / "log.txt").read_text()
    assert (out / "last_checkpoint").read_text() == "model_0000001"
    assert (out / "model_final.pth").is_file()
    # CLS_TINY turns wandb off: no wandb files
    assert not (out / "wandb").exists() and not (out / "wandb_run_id").exists()


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_device_without_cuda_stops_at_start_naming_cpu(tmp_path):
    result = train_net(tmp_path, *CLS_TINY, "train.device=cuda", "train.max_iter=1",
                       f"train.output_dir={tmp_path / 'out'}", config=CLS_CONFIG, check=False)
    assert result.returncode != 0 and "train.device=cpu" in result.stderr
    assert not (tmp_path / "out").exists()  # stopped before anything was written
