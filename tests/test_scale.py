"""Sharding strategies on a real detectron2 model with 2 gloo processes (torchrun): ddp, fsdp
and DeepSpeed ZeRO-1/2/3 give the same losses, keep frozen weights bit-identical, resume
exactly, evaluate with unequal per-rank shares; DCP checkpoints reshard 2 -> 1; a killed
save loses nothing; exports round-trip."""
import json
import math
import os
import subprocess
import sys

from mona_scale.engine.checkpoint import TrainingCheckpointer, last_checkpoint
from mona_scale.engine.checkpoint_weights import load_checkpoint_weights
from mona_scale.engine.config import load_config
from mona_scale.engine.defaults import build_model, build_run_strategy, optimizer_factory
from mona_scale.engine.precision import Precision
from mona_scale.engine.strategies import build_strategy
from mona_scale.export import load_adapter
from mona_scale.export import main as export_main
from mona_scale.launch import find_free_port, shutdown_distributed

import pytest
import torch
from detectron2.checkpoint import DetectionCheckpointer
from helpers.train_net import CONFIG, ROOT, TINY, read_metrics

ITERS, STOP = 4, 2
SCALE = TINY + [
    "optimizer.lr=1e-4", "train.clip_grad=1.0", "train.wandb.enabled=False",
    "train.checkpointer.period=100", "train.eval_period=0",
    "model.backbone.bottom_up.drop_path_rate=0.0", "tuning.dropout=0.0",
    "model.roi_heads.batch_size_per_image=16", "model.proposal_generator.post_nms_topk=[64,64]",
    "model.proposal_generator.pre_nms_topk=[256,128]", f"train.max_iter={ITERS}"]
STRATEGIES = {
    "ddp": ["train.strategy=ddp"],
    "fsdp": ["train.strategy=fsdp"],
    "zero1": ["train.strategy=deepspeed", "train.deepspeed.stage=1"],
    "zero2": ["train.strategy=deepspeed", "train.deepspeed.stage=2"],
    "zero3": ["train.strategy=deepspeed", "train.deepspeed.stage=3"],
}
# accumulation + activation checkpointing + sharded frozen weights, against ddp
ACCUM = ["train.grad_accum=2", "train.activation_checkpointing=True", "train.max_iter=2"]
VARIANTS = {"ddp_accum": STRATEGIES["ddp"] + ACCUM,
            "fsdp_accum": STRATEGIES["fsdp"] + ACCUM + ["train.fsdp.shard_frozen=True"],
            "zero2_accum": STRATEGIES["zero2"] + ACCUM}
# ZeRO-Offload (optimizer state and step on the CPU), against ddp
OFFLOAD = {f"{name}_offload": STRATEGIES[name] + ["train.deepspeed.offload_optimizer=True"]
           for name in ("zero2", "zero3")}
# The fp16 jobs sample 4 regions per image for the cascade's heads (the others 16). On CPU,
# fp16 convolutions compute their gradients in a slow fallback (~0.5 s per box-head
# convolution per step on 2 cores, 4x the bf16 run's time in all); with 4 regions each fp16
# run takes seconds. "ddp_few_rois" is their fp32 reference for the first step.
FEW_ROIS = ["model.roi_heads.batch_size_per_image=4"]
# mixed precision: bf16 autocast under every strategy kind, fp16 (GradScaler) under ddp and
# fsdp, and an fp16 fsdp run stopped and resumed (the scaler's state must survive)
PRECISION = {"ddp_bf16": STRATEGIES["ddp"] + ["train.precision=bf16"],
             "fsdp_bf16": STRATEGIES["fsdp"] + ["train.precision=bf16"],
             "zero3_bf16": STRATEGIES["zero3"] + ["train.precision=bf16"],
             "ddp_fp16": STRATEGIES["ddp"] + FEW_ROIS + ["train.precision=fp16"],
             "fsdp_fp16": STRATEGIES["fsdp"] + FEW_ROIS + ["train.precision=fp16"],
             "ddp_few_rois": STRATEGIES["ddp"] + FEW_ROIS + ["train.max_iter=1"]}
NO_EVAL = ["dataloader.evaluator=null"]
# evaluation with 3 images on 2 ranks: rank 1 pads a forward pass under sharded weights
EVAL = ["dataloader.test.dataset.num_images=3", "train.max_iter=1"]


def _job(tmp, name: str, overrides: list[str], resume: bool = False) -> dict:
    return {"config": CONFIG, "resume": resume,
            "overrides": SCALE + overrides + [f"train.output_dir={tmp / name}"]}


def _jobs(tmp) -> list[dict]:
    jobs = []
    for name, opts in STRATEGIES.items():
        jobs += [_job(tmp, name, opts + NO_EVAL),
                 _job(tmp, f"{name}_b", opts + NO_EVAL + [f"train.stop_at_iter={STOP}"]),
                 _job(tmp, f"{name}_b", opts + NO_EVAL, resume=True)]
    jobs += [_job(tmp, name, opts + NO_EVAL) for name, opts in VARIANTS.items()]
    jobs += [_job(tmp, name, opts + NO_EVAL) for name, opts in (OFFLOAD | PRECISION).items()]
    fp16 = PRECISION["fsdp_fp16"] + NO_EVAL
    jobs += [_job(tmp, "fsdp_fp16_b", fp16 + [f"train.stop_at_iter={STOP}"]),
             _job(tmp, "fsdp_fp16_b", fp16, resume=True)]
    jobs += [dict(_job(tmp, f"{name}_grads", STRATEGIES[name] + NO_EVAL),
                  gradients=str(tmp / f"{name}_grads.pt")) for name in ("ddp", "fsdp")]
    jobs += [_job(tmp, f"{name}_eval", STRATEGIES[name] + EVAL) for name in ("fsdp", "zero3")]
    return jobs


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("scale")
    jobs_file = tmp / "jobs.json"
    jobs_file.write_text(json.dumps(_jobs(tmp)))
    env = dict(os.environ, MONA_DATASETS=str(tmp / "data"), OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
           f"--master_port={find_free_port()}", os.path.join(ROOT, "tests/scale_worker.py"),
           str(jobs_file)]
    result = subprocess.run(cmd, env=env, cwd=tmp, capture_output=True, text=True,
                            timeout=1500)
    if result.returncode != 0:
        raise AssertionError(f"scale jobs failed:\n{result.stderr[-6000:]}")
    (tmp / "stderr.txt").write_text(result.stderr)
    return tmp


def losses(out) -> dict[int, tuple[float, float]]:
    rows = [r for r in read_metrics(out) if "total_loss" in r]
    iterations = [r["iteration"] for r in rows]
    assert len(iterations) == len(set(iterations)), f"an iteration was logged twice: {iterations}"
    return {r["iteration"]: (r["total_loss"], r["grad_norm"]) for r in rows}


def assert_close(a: dict, b: dict, rel: float) -> None:
    assert sorted(a) == sorted(b)
    for it in a:
        for x, y in zip(a[it], b[it], strict=True):
            if math.isinf(y):  # an fp16 step the scaler skips: inf gradient norm
                assert x == y, f"iteration {it}: {a[it]} vs {b[it]}"
                continue
            assert abs(x - y) <= rel * abs(y), f"iteration {it}: {a[it]} vs {b[it]}"


# ZeRO-1/2 reduce gradients in another order than ddp: their weights differ from ddp's by
# ~1e-7 after three steps, and at iteration 3 of this detector that flips a discrete choice
# (measured: loss 5.72836 vs 5.72684, grad norm 7.414 vs 7.466, also on the code before
# this change). Earlier iterations agree within 1e-5; the flipped one within 1e-2.
FLIP_AT = {"zero1": 3, "zero2": 3}


@pytest.mark.slow
@pytest.mark.parametrize("name", ["fsdp", "zero1", "zero2", "zero3"])
def test_losses_and_grad_norms_match_ddp(runs, name):
    reference = losses(runs / "ddp")
    assert sorted(reference) == list(range(ITERS))
    got, flip = losses(runs / name), FLIP_AT.get(name, ITERS)
    assert_close({i: v for i, v in got.items() if i < flip},
                 {i: v for i, v in reference.items() if i < flip}, rel=1e-4)
    assert_close(got, reference, rel=1e-2)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["fsdp_accum", "zero2_accum"])
def test_accumulation_and_checkpointing_match_ddp(runs, name):
    assert_close(losses(runs / name), losses(runs / "ddp_accum"), rel=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(OFFLOAD))
def test_optimizer_offload_matches_ddp(runs, name):
    # offloading moves the optimizer step to the CPU without changing ZeRO's numerics;
    # ZeRO-1/2 and ddp part at iteration 3 (a discrete flip in the detector, see zero2)
    assert_close(losses(runs / name), losses(runs / "zero2"), rel=1e-6)
    first = {it: v for it, v in losses(runs / "ddp").items() if it < 3}
    assert_close({it: v for it, v in losses(runs / name).items() if it < 3}, first, rel=1e-4)


# Under bf16 / fp16 the per-stage resampling of the cascade heads (each stage matches its
# refined boxes again) meets the same discrete flip at iteration 3: measured 2026-12-01,
# zero3_bf16 vs ddp_bf16 loss 5.2472 vs 5.2185, fsdp_fp16 vs ddp_fp16 (4 sampled regions)
# loss 5.3173 vs 5.3438. Earlier iterations agree within 1e-3; the flipped one within 1e-2.
LOW_PRECISION_FLIP_AT = 3


def assert_close_until_flip(got: dict, reference: dict, rel: float) -> None:
    before = {i: v for i, v in reference.items() if i < LOW_PRECISION_FLIP_AT}
    assert_close({i: v for i, v in got.items() if i < LOW_PRECISION_FLIP_AT}, before, rel=rel)
    assert_close(got, reference, rel=1e-2)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["fsdp_bf16", "zero3_bf16"])
def test_bf16_matches_ddp_bf16(runs, name):
    reference = losses(runs / "ddp_bf16")
    assert sorted(reference) == list(range(ITERS))
    assert_close_until_flip(losses(runs / name), reference, rel=1e-3)


@pytest.mark.slow
def test_bf16_and_fp16_are_close_to_fp32(runs):
    # same weights and batch at iteration 0
    fp32, fp32_few_rois = losses(runs / "ddp")[0][0], losses(runs / "ddp_few_rois")[0][0]
    assert abs(losses(runs / "ddp_bf16")[0][0] - fp32) <= 2e-2 * fp32
    assert abs(losses(runs / "ddp_fp16")[0][0] - fp32_few_rois) <= 2e-3 * fp32_few_rois


@pytest.mark.slow
def test_fp16_under_fsdp_matches_ddp(runs):
    reference = losses(runs / "ddp_fp16")
    assert sorted(reference) == list(range(ITERS))
    assert_close_until_flip(losses(runs / "fsdp_fp16"), reference, rel=1e-3)


def _scaler_state(run_dir, iteration: int) -> dict:
    state = torch.load(run_dir / f"model_{iteration:07d}" / "trainer.pt", weights_only=False)
    return state["precision"]


@pytest.mark.slow
def test_fp16_resume_restores_the_grad_scaler(runs):
    resumed = losses(runs / "fsdp_fp16_b")
    assert sorted(resumed) == list(range(ITERS))
    assert_close(resumed, losses(runs / "fsdp_fp16"), rel=1e-6)
    at_stop = _scaler_state(runs / "fsdp_fp16_b", STOP - 1)
    final, uninterrupted = (_scaler_state(runs / name, ITERS - 1)
                            for name in ("fsdp_fp16_b", "fsdp_fp16"))
    assert final == uninterrupted and set(final) >= {"scale", "_growth_tracker"}
    # at the stop the scaler has left its start (scale 2**16, tracker 0): each skipped step
    # halves the scale and resets the tracker, each finite step adds 1 to the tracker, so
    # a resumed run that lost this state would end with another tracker or scale
    assert at_stop["scale"] < 2.0 ** 16 or at_stop["_growth_tracker"] > 0
    assert (final["scale"], final["_growth_tracker"]) != (at_stop["scale"], 0)
    for state, steps in ((at_stop, STOP), (final, ITERS)):
        if state["scale"] == 2.0 ** 16:  # no step skipped: the tracker counts every step
            assert state["_growth_tracker"] == steps


@pytest.mark.slow
def test_fsdp_gradients_equal_ddp_per_parameter(runs):
    ddp = torch.load(runs / "ddp_grads.pt", weights_only=True)
    fsdp = torch.load(runs / "fsdp_grads.pt", weights_only=True)
    assert sorted(ddp) == sorted(fsdp) and len(ddp) > 100
    assert sum(g is not None for g in ddp.values()) > 0.9 * len(ddp)
    for name, expected in ddp.items():
        got = fsdp[name]
        assert (got is None) == (expected is None), name
        if expected is None:
            continue
        assert got.shape == expected.shape, name
        err = (got - expected).norm()
        assert err <= 1e-5 * expected.norm() + 1e-12, f"{name}: |diff| {err} of {expected.norm()}"


@pytest.mark.slow
def test_no_fsdp_view_warning(runs):
    assert "returned a view tensor" not in (runs / "stderr.txt").read_text()


@pytest.mark.slow
@pytest.mark.parametrize("name", list(STRATEGIES))
def test_resume_continues_exactly(runs, name):
    resumed = losses(runs / f"{name}_b")  # 3 iterations, stop, resume, 3 iterations
    assert sorted(resumed) == list(range(ITERS))
    assert_close(resumed, losses(runs / name), rel=1e-6)
    # loaded through the weights_only loader (DeepSpeed's own files included)
    assert f"resuming at iteration {STOP}" in (runs / f"{name}_b" / "log.txt").read_text()
    assert (runs / f"{name}_b" / "last_checkpoint").read_text() == f"model_{ITERS - 1:07d}"
    assert (runs / f"{name}_b" / f"model_{STOP - 1:07d}").is_dir()  # the stop's checkpoint


@pytest.fixture(scope="module")
def fresh_model():
    cfg = load_config(CONFIG, SCALE + ["train.device=cpu"])
    return build_model(cfg)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(STRATEGIES) + list(VARIANTS) + list(OFFLOAD))
def test_frozen_weights_stay_bit_identical_and_adapters_train(runs, name, fresh_model):
    trained = torch.load(runs / name / "model_final.pth", weights_only=True)["model"]
    initial = fresh_model.state_dict()
    params = dict(fresh_model.named_parameters())
    frozen = [k for k, p in params.items() if not p.requires_grad]
    trainable = [k for k, p in params.items() if p.requires_grad]
    assert len(frozen) > 100 and sorted(trained) == sorted(initial)
    assert all(torch.equal(trained[k], initial[k]) for k in frozen)
    changed = [k for k in trainable if not torch.equal(trained[k], initial[k])]
    assert any(".mona" in k or "my_module" in k for k in changed)
    assert len(changed) > 0.5 * len(trainable)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["fsdp", "zero3"])
def test_evaluation_with_unequal_rank_shares(runs, name):
    out = runs / f"{name}_eval"
    final = read_metrics(out)[-1]
    assert "bbox/AP" in final and "segm/AP" in final
    predictions = torch.load(out / "inference" / "instances_predictions.pth",
                             weights_only=False)
    ids = [p["image_id"] for p in predictions]
    assert len(ids) == len(set(ids)) == 3  # every image once, no padded duplicate


@pytest.mark.slow
def test_checkpoints_are_sharded_per_rank(runs):
    fsdp = runs / "fsdp" / f"model_{ITERS - 1:07d}"
    assert sorted(p.name for p in fsdp.glob("*.distcp")) == ["__0_0.distcp", "__1_0.distcp"]
    assert sorted(p.name for p in fsdp.glob("rank*.pt")) == ["rank0.pt", "rank1.pt"]
    zero3 = runs / "zero3" / f"model_{ITERS - 1:07d}" / "state"
    assert len(list(zero3.glob("*optim_states.pt"))) == 2


@pytest.mark.slow
def test_dcp_checkpoint_of_two_ranks_resumes_in_one_process(runs, tmp_path):
    checkpoint = runs / "fsdp_b" / f"model_{STOP - 1:07d}"
    cfg = load_config(CONFIG, SCALE + ["train.device=cpu", "train.strategy=ddp"])
    strategy = build_run_strategy(cfg)
    model, optimizer = strategy.setup(build_model(cfg), optimizer_factory(cfg))
    TrainingCheckpointer(str(tmp_path), strategy, model, optimizer).load(str(checkpoint))
    expected = load_checkpoint_weights(str(checkpoint))
    assert all(torch.equal(v, expected[k]) for k, v in model.state_dict().items())
    steps = {float(s["step"]) for s in optimizer.state.values()}
    assert steps == {float(STOP)} and len(optimizer.state) == sum(
        p.requires_grad for p in model.parameters())
    # and through train_net: resume the 2-rank run with 1 process to the end
    out = tmp_path / "run"
    out.mkdir()
    (out / "last_checkpoint").write_text(checkpoint.name)  # detectron2's pointer file
    os.symlink(checkpoint, out / checkpoint.name)
    env = dict(os.environ, MONA_DATASETS=str(runs / "data"), OMP_NUM_THREADS="1")
    result = subprocess.run([sys.executable, os.path.join(ROOT, "projects/train_net.py"),
                             "--config-file", CONFIG, "--resume", *SCALE, *NO_EVAL,
                             f"train.output_dir={out}"], env=env, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "written by 2 ranks, resumed by 1" in result.stdout + result.stderr
    assert sorted(losses(out)) == list(range(STOP, ITERS))


KILLED_SAVE = """
import os, sys
from mona_scale.engine.checkpoint import TrainingCheckpointer
from mona_scale.engine.precision import Precision
from mona_scale.engine.strategies import build_strategy
import torch
model = torch.nn.Linear(64, 64)
strategy = build_strategy("ddp", Precision())
model, optimizer = strategy.setup(model, lambda m: torch.optim.AdamW(m.parameters()))
model(torch.randn(2, 64)).sum().backward(); optimizer.step()
checkpointer = TrainingCheckpointer(sys.argv[1], strategy, model, optimizer)
checkpointer.save("model_0000000")
real_save = strategy.save_state
def killed(path, model, optimizer):
    real_save(path, model, optimizer)
    with open(os.path.join(path, "__0_0.distcp"), "r+b") as f:
        f.truncate(100)  # half-written shard, then the process dies
    os._exit(9)
strategy.save_state = killed
checkpointer.save("model_0000001")
"""


@pytest.mark.slow
def test_killed_save_keeps_the_previous_checkpoint(tmp_path):
    result = subprocess.run([sys.executable, "-c", KILLED_SAVE, str(tmp_path)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 9, result.stderr[-2000:]
    assert (tmp_path / "last_checkpoint").read_text() == "model_0000000"
    assert (tmp_path / ".model_0000001.tmp").is_dir() and not (tmp_path / "model_0000001").exists()
    model = torch.nn.Linear(64, 64)
    strategy = build_strategy("ddp", Precision())
    model, optimizer = strategy.setup(model, lambda m: torch.optim.AdamW(m.parameters()))
    checkpointer = TrainingCheckpointer(str(tmp_path), strategy, model, optimizer)
    checkpointer.load(last_checkpoint(str(tmp_path)))
    assert all(float(s["step"]) == 1.0 for s in optimizer.state.values())
    checkpointer.save("model_0000001")  # the next save replaces the stale temporary
    assert not (tmp_path / ".model_0000001.tmp").exists()
    assert (tmp_path / "last_checkpoint").read_text() == "model_0000001"


@pytest.mark.slow
@pytest.mark.parametrize("name", ["ddp", "zero2", "zero3"])
def test_export_round_trips(runs, name, tmp_path, fresh_model):
    checkpoint = runs / name / f"model_{ITERS - 1:07d}"
    adapter, full = tmp_path / "adapter.safetensors", tmp_path / "full.pth"
    written = export_main(["--config-file", CONFIG, "--checkpoint", str(checkpoint),
                           "--adapter", str(adapter), "--full", str(full), *SCALE])
    trained = torch.load(runs / name / "model_final.pth", weights_only=True)["model"]
    # base model + adapter file == the trained model
    cfg = load_config(CONFIG, SCALE + ["train.device=cpu"])
    base = build_model(cfg)
    metadata = load_adapter(base, str(adapter))
    assert json.loads(metadata["tuning"])["method"] == "mona"
    assert all(torch.equal(v, trained[k]) for k, v in base.state_dict().items())
    # the full file loads with detectron2's checkpointer
    other = build_model(cfg)
    DetectionCheckpointer(other).load(str(full))
    assert all(torch.equal(v, trained[k]) for k, v in other.state_dict().items())
    # the adapter file is about the trainable share of the full file
    share = sum(p.numel() for p in fresh_model.parameters() if p.requires_grad) / sum(
        p.numel() for p in fresh_model.parameters())
    assert written["adapter"] < written["full"]
    assert 0.5 * share < written["adapter"] / written["full"] < 1.5 * share + 0.02


def test_incompatible_options_fail_at_start():
    build_strategy("fsdp", Precision("fp16"))  # torch's GradScaler works on DTensor shards
    with pytest.raises(ValueError, match="fp16 with train.strategy=deepspeed.*Use train.prec"):
        build_strategy("deepspeed", Precision("fp16"), stage=2)
    with pytest.raises(ValueError, match=r"train.deepspeed.stage=4"):
        build_strategy("deepspeed", Precision(), stage=4)
    with pytest.raises(ValueError, match="offload_optimizer needs stage 2 or 3"):
        build_strategy("deepspeed", Precision(), stage=1, offload_optimizer=True)
    with pytest.raises(ValueError, match="param_dtype"):
        build_strategy("fsdp", Precision(), param_dtype="int8")
    with pytest.raises(KeyError, match="train.strategy"):
        build_strategy("horovod", Precision())


def test_unknown_strategy_options_are_refused_naming_the_key():
    with pytest.raises(ValueError, match=r"train\.fsdp\.per_blok.*allowed.*'per_block'"):
        build_strategy("fsdp", Precision(), per_blok=False)
    with pytest.raises(ValueError, match=r"train\.deepspeed\.zero_stage.*allowed.*'stage'"):
        build_strategy("deepspeed", Precision(), zero_stage=3)
    with pytest.raises(ValueError, match=r"train\.ddp\.bucket_mb.*'find_unused_parameters'"):
        build_strategy("ddp", Precision(), bucket_mb=25)
    with pytest.raises(ValueError, match=r"train\.fsdp\.unit_mb=0"):
        build_strategy("fsdp", Precision(), unit_mb=0)
    with pytest.raises(ValueError, match=r"train\.precision='fp8'.*\['fp32', 'bf16', 'fp16'\]"):
        Precision("fp8")
    options = build_strategy("fsdp", Precision(), per_block=True).options
    with pytest.raises(AttributeError):  # frozen
        options.per_block = False


def test_group_units_fills_groups_in_order_like_buckets():
    from mona_scale.engine.strategies.fsdp import group_units

    sizes = {"a": 1, "b": 0, "c": 2, "d": 5, "e": 1, "f": 1}
    units = list(sizes)
    # a unit of 0 bytes joins no group; a group closes once it holds >= 3 bytes
    assert group_units(units, sizes.get, 3) == [["a", "c"], ["d"], ["e", "f"]]
    assert group_units(units, sizes.get, 0) == [["a"], ["c"], ["d"], ["e"], ["f"]]
    assert group_units(units, sizes.get, 100) == [["a", "c", "d", "e", "f"]]


class _Block(torch.nn.Module):
    """A frozen linear layer with a trainable adapter (16 * 16 + 16 parameters)."""

    def __init__(self):
        super().__init__()
        self.frozen, self.adapter = torch.nn.Linear(16, 16), torch.nn.Linear(16, 16)
        self.frozen.requires_grad_(False)

    def forward(self, x):
        return x + self.adapter(self.frozen(x))


class _Backbone(torch.nn.Module):
    """Six blocks behind the ShardableBackbone protocol (no real backbone class)."""

    def __init__(self):
        super().__init__()
        self.blocks = torch.nn.ModuleList(_Block() for _ in range(6))

    def shard_units(self):
        return list(self.blocks)

    def set_activation_checkpointing(self, enabled=True):
        pass

    def forward(self, x):
        for block in self.blocks:
            x = block(x)
        return x


class _Model(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone, self.head = _Backbone(), torch.nn.Linear(16, 4)

    def forward(self, batch):
        return {"loss": self.head(self.backbone(batch)).square().mean()}


# fsdp layouts of _Model: options, and (all-gathers, reduce-scatters) per step counted by hand.
# An adapter is 272 fp32 parameters (1088 bytes), the head 68 (272 bytes). Each unit
# all-gathers in forward and again in backward (reshard_after_forward), and reduce-scatters
# its gradients once.
ADAPTER_MB = 1088 / 2 ** 20
LAYOUTS = {
    "per_block": ({"per_block": True}, (14, 7)),  # 6 blocks + head = 7 units
    "grouped_3": ({"unit_mb": 3 * ADAPTER_MB}, (6, 3)),  # blocks 1-3, 4-6, head
    "grouped": ({}, (2, 1)),  # all in one unit of at most 25 MiB
    "single": ({"per_block": False}, (2, 1)),  # the root unit only
    "no_reshard": ({"per_block": True, "reshard_after_forward": False}, (7, 7)),
    # bf16 unit weights need the frozen ones sharded (cast) too, or autocast
    "bf16_params": ({"param_dtype": "bf16", "shard_frozen": True}, (2, 1)),
}


def _fsdp_layouts_worker(rank: int, init: str, out: str) -> None:
    import torch.distributed as dist
    from torch.profiler import ProfilerActivity, profile

    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=2)
    torch.manual_seed(0)
    initial = _Model()
    batches = torch.randn(2, 2, 8, 16)  # (step, rank, rows, features): same on both ranks
    results = {}
    try:
        build_strategy("fsdp", Precision(), param_dtype="bf16").setup(_Model(), None)
    except ValueError as error:
        results["refused"] = str(error)
    for name, (options, _) in LAYOUTS.items():
        model = _Model()
        model.load_state_dict(initial.state_dict())
        strategy = build_strategy("fsdp", Precision(), **options)
        model, optimizer = strategy.setup(model, lambda m: torch.optim.SGD(
            [p for p in m.parameters() if p.requires_grad], lr=0.5))
        counts = {}
        for step, batch in enumerate(batches):
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                strategy.backward(model(batch[rank])["loss"])
                strategy.step(model, optimizer)
            if step == 1:
                names = [e.name for e in prof.events()]
                counts = [names.count("c10d::_allgather_base_"),
                          names.count("c10d::_reduce_scatter_base_")]
        results[name] = {"counts": counts, "state": strategy.full_state_dict(model)}
    if rank == 0:
        torch.save(results, out)
    del model, optimizer, strategy  # FSDP's modules hold the group
    shutdown_distributed()


@pytest.mark.slow
def test_fsdp_layouts_count_collectives_and_train_alike(tmp_path):
    import torch.multiprocessing as mp

    out = tmp_path / "layouts.pt"
    init = f"file://{tmp_path / 'rendezvous'}"
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    mp.spawn(_fsdp_layouts_worker, args=(init, str(out)), nprocs=2, join=True)
    results = torch.load(out, weights_only=False)
    # the reference: one process, plain SGD on both ranks' rows (FSDP averages the ranks'
    # gradients of their mean losses = the gradient of the mean over all rows)
    torch.manual_seed(0)
    reference = _Model()
    batches = torch.randn(2, 2, 8, 16)
    optimizer = torch.optim.SGD([p for p in reference.parameters() if p.requires_grad], lr=0.5)
    for batch in batches:
        reference(batch.reshape(16, 16))["loss"].backward()
        optimizer.step()
        optimizer.zero_grad()
    expected = reference.state_dict()
    for name, (_, counts) in LAYOUTS.items():
        assert results[name]["counts"] == list(counts), name
        state = results[name]["state"]
        assert sorted(state) == sorted(expected), name
        # bf16 unit weights: about 3 significant digits in forward and backward
        atol, rtol = (1e-2, 0.0) if name == "bf16_params" else (1e-6, 1e-5)
        for key, value in expected.items():
            assert torch.allclose(state[key], value, rtol=rtol, atol=atol), (name, key)
            if ".frozen." in key:
                assert torch.equal(state[key], value), (name, key)
    assert "set train.precision=bf16 (" in results["refused"]
    # the default grouped layout issues fewer collectives than one unit per block
    assert sum(results["grouped"]["counts"]) < sum(results["per_block"]["counts"])
