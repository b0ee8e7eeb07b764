"""Checkpoints that are never lost, files that cannot run code, inputs that fail by name:
pruning next to foreign directories, a corrupt pointer, an earlier run's directory, exactly
once metrics and wandb rows after a crash, weights_only loading, eval-only without weights,
checkpoint directories as init_checkpoint, DeepSpeed at another world size, wandb failures,
redaction of credentials."""
import json
import logging
import os
import pickle
import subprocess
import sys
import time

from mona_scale.engine.checkpoint import (
    last_checkpoint,
    read_meta,
)
from mona_scale.engine.run_dir import prepare_output_dir
from mona_scale.redact import redact

import pytest
import torch
from detectron2.utils.events import EventStorage
from helpers.tiny_trainer import tiny_trainer as _trainer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLS_CONFIG = os.path.join(ROOT, "configs/quickstart/shapes_cls_mona.py")
CLS_TINY = ["dataloader.train.total_batch_size=2", "dataloader.train.num_workers=0",
            "dataloader.test.num_workers=0", "dataloader.train.dataset.num_images=8",
            "dataloader.test.dataset.num_images=4", "train.log_period=1",
            "train.eval_period=0"]


def _foreign(out, name, iteration=None, run="another-run"):
    """A checkpoint-like directory this run did not write (a longer earlier run's, or a
    user's ``model_best``)."""
    path = out / name
    path.mkdir(parents=True)
    if iteration is not None:
        (path / "meta.json").write_text(json.dumps(
            {"strategy": "ddp", "world_size": 1, "iteration": iteration, "run": run}))
    (path / "weights.bin").write_bytes(b"keep me")
    return path


def test_pruning_keeps_the_new_checkpoint_next_to_foreign_directories(tmp_path):
    _foreign(tmp_path, "model_0009999", iteration=9999)  # an earlier, longer run
    _foreign(tmp_path, "model_best")  # the user's
    trainer, _ = _trainer(tmp_path, period=1, keep=2)
    trainer.train(0, 6)
    assert (tmp_path / "last_checkpoint").read_text() == "model_0000005"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("model_")) == [
        "model_0000004", "model_0000005", "model_0009999", "model_best", "model_final.pth"]
    assert (tmp_path / "model_best" / "weights.bin").read_bytes() == b"keep me"


def test_a_resumed_run_prunes_its_own_earlier_checkpoints_only(tmp_path):
    _foreign(tmp_path, "model_0000001", iteration=1)  # same name range, another run
    trainer, _ = _trainer(tmp_path, period=2, keep=2)
    trainer.train(0, 4)  # writes 0001 (replacing the foreign one) and 0003
    resumed, checkpointer = _trainer(tmp_path, period=2, keep=2)
    checkpointer.load(last_checkpoint(str(tmp_path)))
    resumed.train(resumed.iter + 1, 8)  # 0005, 0007: 0001 and 0003 are this run's, older
    names = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("model_0"))
    assert names == ["model_0000005", "model_0000007"]
    assert read_meta(str(tmp_path / "model_0000007"))["run"] == checkpointer.run_id


@pytest.mark.parametrize("pointer", [b"", b"\xff\xfe\x00garbage", b"model_0000042",
                                     b"../../etc", b"model_0000002\n\x00"])
def test_empty_or_corrupt_pointer_falls_back_to_the_newest_complete_checkpoint(
        tmp_path, caplog, pointer):
    trainer, _ = _trainer(tmp_path, period=1, keep=0)
    trainer.train(0, 4)
    (tmp_path / ".model_0000004.tmp").mkdir()  # an interrupted save: not complete
    (tmp_path / "model_0000009").mkdir()  # no meta.json: not complete either
    (tmp_path / "last_checkpoint").write_bytes(pointer)
    with caplog.at_level(logging.WARNING):
        assert last_checkpoint(str(tmp_path)) == str(tmp_path / "model_0000003")
    assert "empty or corrupt" in caplog.text and "model_0000003" in caplog.text


def test_every_checkpoint_file_loads_with_weights_only(tmp_path):
    trainer, _ = _trainer(tmp_path, period=2, keep=0, precision="fp16")
    trainer.train(0, 2)
    files = sorted((tmp_path / "model_0000001").glob("*.pt"))
    assert [f.name for f in files] == ["rank0.pt", "trainer.pt"]
    for path in files:  # an independent reader: torch's own safe loader
        torch.load(path, weights_only=True)
    state = torch.load(tmp_path / "model_0000001" / "trainer.pt", weights_only=True)
    assert state["precision"]["scale"] > 0  # the fp16 scaler's state is in there


class _Payload:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_checkpoint_file_that_would_run_code_is_refused(tmp_path):
    trainer, checkpointer = _trainer(tmp_path, period=1, keep=0)
    trainer.train(0, 2)
    marker = tmp_path / "pwned"
    state = torch.load(tmp_path / "model_0000001" / "trainer.pt", weights_only=True)
    state["evil"] = _Payload(marker)
    torch.save(state, tmp_path / "model_0000001" / "trainer.pt")
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        checkpointer.load(str(tmp_path / "model_0000001"))
    assert not marker.exists()


def test_new_run_in_an_earlier_runs_directory_is_refused_or_starts_over(tmp_path):
    out = tmp_path / "run"
    trainer, _ = _trainer(out, period=1, keep=0)
    trainer.train(0, 2)
    (out / "metrics.json").write_text('{"iteration": 0}\n{"iteration": 1}\n')
    (out / "wandb_run_id").write_text("abc")
    with pytest.raises(FileExistsError, match=rf"{out}.*--resume.*train\.overwrite=True"):
        prepare_output_dir(str(out), resume=False)
    assert prepare_output_dir(str(out), resume=True) == str(out / "model_0000001")
    assert prepare_output_dir(str(out), resume=False, overwrite=True) is None
    assert not any((out / n).exists() for n in ("last_checkpoint", "metrics.json",
                                                 "wandb_run_id"))
    assert prepare_output_dir(str(tmp_path / "new"), resume=False) is None  # empty: fine


def test_resume_cuts_metrics_back_to_the_restored_iteration(tmp_path):
    trainer, _ = _trainer(tmp_path, period=2, keep=0)
    trainer.train(0, 4)  # model_0000001, model_0000003
    rows = [{"iteration": i, "total_loss": float(i)} for i in range(6)]  # crash after 5
    text = "".join(json.dumps(r) + "\n" for r in rows) + '{"iteration": 6, "tot'  # torn
    (tmp_path / "metrics.json").write_text(text)
    (tmp_path / "last_checkpoint").write_text("model_0000003")
    assert prepare_output_dir(str(tmp_path), resume=True) == str(tmp_path / "model_0000003")
    kept = [json.loads(line) for line in (tmp_path / "metrics.json").read_text().splitlines()]
    assert kept == rows[:4]


def _train_net(tmp_path, *args, check=True):
    env = dict(os.environ, MONA_DATASETS=str(tmp_path / "data"), OMP_NUM_THREADS="1",
               WANDB_MODE="offline")
    env.pop("WANDB_API_KEY", None)
    flags = [a for a in args if "=" not in a]
    result = subprocess.run([sys.executable, os.path.join(ROOT, "projects/train_net.py"),
                             "--config-file", CLS_CONFIG, *flags, *CLS_TINY,
                             *[a for a in args if "=" in a]], env=env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=600)
    if check and result.returncode != 0:
        raise AssertionError(f"train_net failed:\n{result.stderr[-4000:]}")
    return result


def _wandb_segments(out):
    """(branch point or None, steps with total_loss) per offline run segment, in order."""
    sys.path.insert(0, os.path.dirname(__file__))
    from helpers.wandb_records import _payloads
    from wandb.proto import wandb_internal_pb2

    segments = []
    for path in sorted((out / "wandb").glob("offline-run-*/run-*.wandb")):
        branch, steps = None, []
        for raw in _payloads(str(path)):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(raw)
            kind = record.WhichOneof("record_type")
            if kind == "run" and record.run.HasField("branch_point"):
                branch = (record.run.branch_point.run, record.run.branch_point.value)
            elif kind == "history":
                row = {i.key or "/".join(i.nested_key): json.loads(i.value_json)
                       for i in record.history.item}
                if "total_loss" in row:
                    steps.append(row["_step"])
        segments.append((branch, steps))
    return segments


@pytest.mark.slow
def test_crash_and_resume_log_each_iteration_once_in_metrics_and_wandb(tmp_path):
    out = tmp_path / "run"
    _train_net(tmp_path, "train.max_iter=4", "train.checkpointer.period=2",
               "train.wandb.enabled=True", f"train.output_dir={out}")
    # the state a job killed while saving iteration 3 leaves: rows 2..3 logged, the pointer
    # still naming iteration 1
    import shutil
    shutil.rmtree(out / "model_0000003")
    (out / "model_final.pth").unlink()
    (out / "last_checkpoint").write_text("model_0000001")
    refused = _train_net(tmp_path, "train.max_iter=4", f"train.output_dir={out}",
                         "train.checkpointer.period=2", check=False)
    assert refused.returncode != 0 and "--resume" in refused.stderr
    assert "train.overwrite=True" in refused.stderr
    _train_net(tmp_path, "--resume", "train.max_iter=4", "train.checkpointer.period=2",
               "train.wandb.enabled=True", f"train.output_dir={out}")
    with open(out / "metrics.json") as f:
        rows = [json.loads(line) for line in f]
    assert [r["iteration"] for r in rows if "total_loss" in r] == list(range(4))
    run_id = (out / "wandb_run_id").read_text()
    (_, first), (branch, second) = _wandb_segments(out)
    assert first == list(range(4)) and second == [2, 3]
    assert branch == (run_id, 1.0)  # rewound to the restored iteration: rows after it go
    # wandb's rewind keeps the history up to the branch point, then the new segment
    assert [s for s in first if s <= branch[1]] + second == list(range(4))
    # the restored checkpoint, as a directory, is a valid init_checkpoint / eval source
    from mona_scale.engine.config import load_config
    from mona_scale.engine.defaults import build_model, load_init_checkpoint

    from torch.distributed.checkpoint.format_utils import dcp_to_torch_save

    cfg = load_config(CLS_CONFIG, [*CLS_TINY, f"train.output_dir={tmp_path / 'x'}"])
    dcp_to_torch_save(str(out / "model_0000001"), str(tmp_path / "ref.pt"))
    reference = torch.load(tmp_path / "ref.pt", weights_only=True)["model"]
    for source in (out / "model_0000001", out):  # the output dir: its pointer's target...
        model = build_model(cfg)
        assert load_init_checkpoint(model, str(source)) == "model"
        expected = (reference if source != out else
                    torch.load(out / "model_final.pth", weights_only=True)["model"])
        assert all(torch.equal(v, expected[k]) for k, v in model.state_dict().items())


def test_a_dcp_checkpoint_reads_as_torchs_own_converter_reads_it(tmp_path):
    from mona_scale.engine.checkpoint_weights import load_checkpoint_weights

    from torch.distributed.checkpoint.format_utils import dcp_to_torch_save

    trainer, _ = _trainer(tmp_path, period=1, keep=0)
    trainer.train(0, 2)
    dcp_to_torch_save(str(tmp_path / "model_0000001"), str(tmp_path / "ref.pt"))
    reference = torch.load(tmp_path / "ref.pt", weights_only=True)["model"]
    state = load_checkpoint_weights(str(tmp_path / "model_0000001"))
    assert list(state) == ["weight"] and torch.equal(state["weight"], reference["weight"])
    assert state["weight"].tolist() == pytest.approx([0.8] * 3)  # 1 - 2 steps x lr 0.1 x 1


def test_eval_only_without_weights_fails_naming_what_to_pass(tmp_path):
    from mona_scale.engine.config import load_config
    from mona_scale.engine.defaults import _load_for_evaluation, build_model

    cfg = load_config(CLS_CONFIG, [*CLS_TINY, f"train.output_dir={tmp_path}",
                                   "train.init_checkpoint="])
    model = build_model(cfg)
    for resume in (False, True):
        with pytest.raises(FileNotFoundError, match="no weights to evaluate.*init_checkpoint="):
            _load_for_evaluation(cfg, model, resume)


@pytest.mark.slow
def test_deepspeed_checkpoint_at_another_world_size_fails_before_deepspeed_starts(tmp_path):
    out = tmp_path / "ds"
    _train_net(tmp_path, "train.strategy=deepspeed", "train.max_iter=1",
                       "train.wandb.enabled=False", f"train.output_dir={out}")
    built = (out / "log.txt").read_text().count(", tuning=")  # build_model's line
    assert built == 1
    meta = json.loads((out / "model_0000000" / "meta.json").read_text())
    meta["world_size"] = 2  # as a 2-rank job would have written it
    (out / "model_0000000" / "meta.json").write_text(json.dumps(meta))
    resumed = _train_net(tmp_path, "--resume", "train.strategy=deepspeed", "train.max_iter=2",
                         "train.wandb.enabled=False", f"train.output_dir={out}", check=False)
    assert resumed.returncode != 0
    assert "written by 2 ranks and this run has 1" in resumed.stdout + resumed.stderr
    # refused at set-up: no model was built, so DeepSpeed never started
    assert (out / "log.txt").read_text().count(", tuning=") == built
    # (a DeepSpeed checkpoint at the same world size resumes through the weights_only
    # loader: test_scale.py::test_resume_continues_exactly[zero1/zero2/zero3])
    # a DeepSpeed file that would run code is refused by its own loader
    meta["world_size"] = 1  # as written
    (out / "model_0000000" / "meta.json").write_text(json.dumps(meta))
    from mona_scale.engine.checkpoint import weights_only_loads
    from mona_scale.engine.checkpoint_weights import load_checkpoint_weights

    optim = next((out / "model_0000000" / "state").glob("*optim_states.pt"))
    with weights_only_loads():
        state = torch.load(optim)
    marker = tmp_path / "pwned"
    state["evil"] = _Payload(marker)
    torch.save(state, optim)
    with pytest.raises(pickle.UnpicklingError):
        load_checkpoint_weights(str(out / "model_0000000"))
    assert not marker.exists()


def test_wandb_failures_are_warnings_and_training_continues(tmp_path, monkeypatch, caplog):
    from mona_scale.engine.wandb_writer import WandbWriter

    import wandb

    monkeypatch.setenv("WANDB_MODE", "offline")
    writer = WandbWriter(str(tmp_path / "ok"), {"a": 1})  # a real offline run
    writer.run.finish()  # from now on wandb's log raises (the run is finished)
    with EventStorage(0) as storage, caplog.at_level(logging.WARNING):
        storage.put_scalar("total_loss", 1.0)
        writer.write()
    assert "wandb could not log iteration 0" in caplog.text

    def broken_init(**kwargs):
        raise wandb.errors.CommError("network is unreachable")

    monkeypatch.setattr(wandb, "init", broken_init)
    with caplog.at_level(logging.WARNING):
        broken = WandbWriter(str(tmp_path / "down"), {"a": 1})
    assert "training continues without wandb" in caplog.text
    with EventStorage(0) as storage:
        storage.put_scalar("total_loss", 1.0)
        broken.write()
        broken.close()


SECRETS = ["tok3n", "s1gnature", "AKIAABCDEFGHIJKLMNOP", "wJalrXUtnFEMI", "hunter2"]
URLS = ["pipe:curl -s -H 'Authorization: Bearer tok3n' https://h/coco-{000..009}.tar",
        "pipe:curl -s 'https://b.s3.amazonaws.com/x.tar?X-Amz-Credential=AKIAABCDEFGHIJKLMNOP"
        "&X-Amz-Signature=s1gnature'",
        "pipe:AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI aws s3 cp s3://b/{name} -",
        "pipe:curl -u bob:hunter2 https://h/x.tar", "pipe:tool --token tok3n -"]


def test_redaction_removes_credentials_and_keeps_the_rest():
    for url in URLS:
        shown = redact(url)
        assert not any(s in shown for s in SECRETS) and "<redacted>" in shown, shown
    assert redact(URLS[0]).endswith("https://h/coco-{000..009}.tar")
    assert redact("/data/coco/train-{000000..000127}.tar") == \
        "/data/coco/train-{000000..000127}.tar"
    assert redact({"a": [URLS[2]], "n": 3}) == {
        "a": ["pipe:AWS_SECRET_ACCESS_KEY=<redacted> aws s3 cp s3://b/{name} -"], "n": 3}


def test_config_yaml_and_wandb_config_hold_no_credentials(tmp_path, monkeypatch):
    from mona_scale.engine.config import load_config, save_config
    from mona_scale.engine.wandb_writer import WandbWriter

    cfg = load_config(CLS_CONFIG, [f"train.output_dir={tmp_path}"])
    cfg.train.init_checkpoint = URLS[1]
    cfg.train.wandb.name = URLS[0]
    save_config(cfg, str(tmp_path / "config.yaml"))
    text = (tmp_path / "config.yaml").read_text()
    assert not any(s in text for s in SECRETS) and "X-Amz-Signature=<redacted>" in text
    assert cfg.train.init_checkpoint == URLS[1]  # the run itself still uses the real URL
    monkeypatch.setenv("WANDB_MODE", "offline")
    from omegaconf import OmegaConf
    WandbWriter(str(tmp_path), OmegaConf.to_container(cfg), name="x").close()
    deadline = time.monotonic() + 60  # wandb's service may still be writing after finish()
    while True:
        logged = b"".join(p.read_bytes() for p in (tmp_path / "wandb").rglob("*.wandb"))
        if b"X-Amz-Signature=<redacted>" in logged or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert b"X-Amz-Signature=<redacted>" in logged
    assert not any(s.encode() in logged for s in SECRETS)


DISK_FULL_SAVE = """
import resource, signal, sys
sys.path.insert(0, sys.argv[2])
from helpers.tiny_trainer import tiny_trainer as _trainer
trainer, checkpointer = _trainer(sys.argv[1], period=1000, keep=0)
trainer.train(0, 1)  # model_0000000 and model_final.pth, complete
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG
resource.setrlimit(resource.RLIMIT_FSIZE, (200, 200))  # the disk is (as good as) full
try:
    checkpointer.save("model_0000001")
except OSError as e:  # the library's error: names the checkpoint and the cause
    print("save failed:", e)
    sys.exit(3)
"""


def test_the_next_save_removes_what_killed_saves_left(tmp_path):
    trainer, checkpointer = _trainer(tmp_path, period=1000, keep=0)
    trainer.train(0, 1)
    left = [tmp_path / "last_checkpoint.tmp.4242", tmp_path / "model_final.pth.tmp.4243"]
    for path in left:  # an atomic writer killed between its write and its rename
        path.write_text("partial")
    (tmp_path / ".model_0000007.tmp").mkdir()  # a killed save of another iteration
    (tmp_path / ".model_0000007.tmp" / "rank0.pt").write_text("partial")
    (tmp_path / "notes.tmp").write_text("the user's")
    checkpointer.save("model_0000001")
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "last_checkpoint", "model_0000000", "model_0000001", "model_final.pth", "notes.tmp"]
    assert (tmp_path / "last_checkpoint").read_text() == "model_0000001"


@pytest.mark.slow
def test_a_save_that_runs_out_of_space_keeps_the_previous_checkpoint(tmp_path):
    """The OS refuses the writes (a file size limit: the same EFBIG/ENOSPC path as a full
    disk): the save raises, the pointer still names the last complete checkpoint."""
    out = tmp_path / "run"
    result = subprocess.run([sys.executable, "-c", DISK_FULL_SAVE, str(out),
                             os.path.dirname(__file__)], capture_output=True, text=True,
                            timeout=300, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert result.returncode == 3, result.stderr[-3000:]
    assert "save failed: saving checkpoint" in result.stdout
    assert "File too large" in result.stdout and "still names" in result.stdout
    assert (out / "last_checkpoint").read_text() == "model_0000000"
    assert not (out / "model_0000001").exists()
    trainer, checkpointer = _trainer(out, period=1000, keep=0)
    checkpointer.load(last_checkpoint(str(out)))
    assert trainer.iter == 0 and trainer.model.weight.detach().tolist() != [1.0, 1.0, 1.0]
    checkpointer.save("model_0000001")  # with space again, the stale temporary is replaced
    assert not (out / ".model_0000001.tmp").exists()
    assert (out / "last_checkpoint").read_text() == "model_0000001"
