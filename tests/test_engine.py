"""Engine pieces: strict overrides, parameter-group rules, precision, NaN stop, atomic
checkpoints, RNG state."""
import json
import os

from mona_scale.data.loader import build_train_loader
from mona_scale.engine.checkpoint import (
    PeriodicCheckpointHook,
    TrainingCheckpointer,
    last_checkpoint,
    rng_state,
    set_rng_state,
)
from mona_scale.engine.config import apply_overrides, load_config
from mona_scale.engine.optim import optimizer_param_groups
from mona_scale.engine.precision import Precision
from mona_scale.engine.strategies import build_strategy
from mona_scale.engine.trainer import StrategyTrainer

import numpy as np
import pytest
import torch
from detectron2.engine import HookBase
from detectron2.utils.events import EventStorage
from torch import nn

QUICKSTART = "configs/quickstart/shapes_cascade_mona.py"


def test_unknown_override_key_is_named_with_a_suggestion():
    cfg = load_config(QUICKSTART)
    with pytest.raises(KeyError, match=r"train.max_iters.*did you mean \['train.max_iter'"):
        apply_overrides(cfg, ["train.max_iters=10"])
    with pytest.raises(ValueError, match="key=value"):
        apply_overrides(cfg, ["train.max_iter"])
    apply_overrides(cfg, ["train.max_iter=7", "tuning.method=lora",
                          "dataloader.train.mapper.augmentations.0.short_edge_length=[64]"])
    assert cfg.train.max_iter == 7 and cfg.tuning.method == "lora"
    assert list(cfg.dataloader.train.mapper.augmentations[0].short_edge_length) == [64]


def test_override_may_name_an_argument_of_a_lazy_call():
    cfg = load_config(QUICKSTART, ["model.backbone.bottom_up.activation_checkpointing=True"])
    assert cfg.model.backbone.bottom_up.activation_checkpointing is True
    with pytest.raises(KeyError, match="model.backbone.bottom_up.no_such_argument"):
        apply_overrides(cfg, ["model.backbone.bottom_up.no_such_argument=1"])


def test_missing_config_file_is_named():
    with pytest.raises(FileNotFoundError, match="nope.py"):
        load_config("configs/nope.py")


def _named_groups(model: nn.Module, groups: list[dict]) -> dict[float, set[str]]:
    names = {id(p): n for n, p in model.named_parameters()}
    assert all(set(g) == {"params", "weight_decay"} for g in groups)
    return {g["weight_decay"]: {names[id(p)] for p in g["params"]} for g in groups}


def test_parameter_group_rules():
    class Toy(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(4, 4)
            self.norm = nn.LayerNorm(4)
            self.bn = nn.BatchNorm2d(4)
            self.gn = nn.GroupNorm(2, 4)
            self.lazy_bn = nn.LazyBatchNorm1d()  # becomes a BatchNorm1d when materialised
            self.relative_position_bias_table = nn.Parameter(torch.zeros(9, 2))
            self.frozen = nn.Linear(4, 4)
            self.frozen.requires_grad_(False)
            self.gamma = nn.Parameter(torch.ones(4))
            self.shared = self.linear  # the same parameters twice: listed once

    toy = Toy()
    toy.lazy_bn(torch.ones(2, 4))
    groups = optimizer_param_groups(toy, 0.05)
    assert len(groups) == 2
    assert _named_groups(toy, groups) == {
        0.05: {"linear.weight", "linear.bias", "gamma"},
        0.0: {"norm.weight", "norm.bias", "bn.weight", "bn.bias", "gn.weight", "gn.bias",
              "lazy_bn.weight", "lazy_bn.bias", "relative_position_bias_table"}}
    optimizer = torch.optim.AdamW(groups, lr=1e-3, weight_decay=0.5)  # groups' decay wins
    assert sorted(g["weight_decay"] for g in optimizer.param_groups) == [0.0, 0.05]
    with pytest.raises(ValueError, match="no trainable parameter"):
        optimizer_param_groups(nn.Linear(2, 2).requires_grad_(False), 0.05)


def test_channel_first_layer_norm_of_upstream_detectron2_does_not_decay():
    layer_norm = pytest.importorskip("detectron2.layers").__dict__.get("LayerNorm")
    if layer_norm is None:
        pytest.skip("detectron2 v0.6 has no channel-first LayerNorm")
    model = nn.Sequential(nn.Conv2d(2, 4, 1), layer_norm(4))
    assert _named_groups(model, optimizer_param_groups(model, 0.1)) == {
        0.1: {"0.weight", "0.bias"}, 0.0: {"1.weight", "1.bias"}}


def test_mona_adapter_norms_do_not_decay(tiny_swin):
    model = tiny_swin("mona")
    groups = _named_groups(model, optimizer_param_groups(model, 0.05))
    assert groups[0.0] and all(n.endswith((".norm.weight", ".norm.bias")) for n in groups[0.0])
    assert any(n.endswith("my_module_1.gamma") for n in groups[0.05])
    assert not any("relative_position_bias_table" in n for n in groups[0.05])


def test_console_line_is_detectron2s_with_cpu_memory(tmp_path):
    import logging
    import re

    from mona_scale.engine.writers import build_event_writers

    printer, json_writer = build_event_writers(str(tmp_path), max_iter=10)
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = printer.logger.logger  # detectron2's, as set up by the run
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        with EventStorage(0) as storage:  # a run stopped in the timer's warm-up: no "time"
            storage.put_scalars(loss_box=5.0, lr=0.25, smoothing_hint=False)
            printer.write()
            printer.write()  # after_train writes again at a stop: no second line, no error
            assert len(records) == 1
        with EventStorage(0) as storage:
            for it, loss in enumerate([3.0, 1.0, 2.0]):
                storage.iter = it
                storage.put_scalars(loss_box=loss, lr=0.25, smoothing_hint=False)
                storage.put_scalar("time", 0.5)
            printer.write()
            json_writer.write()
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    line = records[-1].getMessage()
    assert "iter: 2" in line and "loss_box: 2" in line and "lr: 0.25" in line  # the median
    assert "eta: 0:00:03" in line  # 7 iterations left at 0.5 s
    with open("/proc/self/status") as f:  # VmRSS, in kB: another reader of the same figure
        rss = next(int(x.split()[1]) for x in f if x.startswith("VmRSS:")) / 1024
    shown = float(re.search(r"cpu_mem: (\d+)M$", line).group(1))
    assert abs(shown - rss) < 0.1 * rss
    assert json.loads((tmp_path / "metrics.json").read_text().splitlines()[-1])["iteration"] == 2


def test_precision():
    with pytest.raises(ValueError, match="train.precision='fp8'"):
        Precision("fp8")
    bf16 = Precision("bf16", "cpu")
    with bf16.autocast():
        out = nn.Linear(4, 4)(torch.randn(2, 4))
    assert out.dtype == torch.bfloat16 and not bf16.scaler.is_enabled()
    assert Precision("fp16", "cpu").scaler.is_enabled()
    with Precision("fp32").autocast():
        assert nn.Linear(4, 4)(torch.randn(2, 4)).dtype == torch.float32


class _LossModel(nn.Module):
    """Returns a loss dict; the loss is NaN from iteration `nan_at` on."""

    def __init__(self, nan_at: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(3))
        self.calls, self.nan_at = 0, nan_at

    def forward(self, batch):
        self.calls += 1
        loss = (self.weight * torch.stack(batch)).sum()
        if self.calls > self.nan_at:
            loss = loss * float("nan")
        return {"loss_a": loss, "loss_b": torch.tensor(1.0)}


def _trainer(model, tmp_path, period):
    strategy = build_strategy("ddp", Precision("fp32"))
    model, optimizer = strategy.setup(model, lambda m: torch.optim.SGD(m.parameters(), lr=0.1))
    data = build_train_loader([{}], mapper=lambda _: torch.ones(3), total_batch_size=1,
                              seed=0, aspect_ratio_grouping=False)
    trainer = StrategyTrainer(model, data, optimizer, strategy)
    checkpointer = TrainingCheckpointer(str(tmp_path), strategy, model, optimizer, trainer)
    trainer.register_hooks([PeriodicCheckpointHook(checkpointer, period, max_to_keep=2)])
    return trainer, checkpointer


def test_nan_loss_stops_with_iteration_and_terms_and_keeps_last_checkpoint(tmp_path):
    trainer, checkpointer = _trainer(_LossModel(nan_at=7), tmp_path, period=2)
    with pytest.raises(FloatingPointError, match=r"iteration 7.*'loss_a': nan.*'loss_b': 1.0"):
        trainer.train(0, 10)
    assert (tmp_path / "last_checkpoint").read_text() == "model_0000005"
    assert sorted(os.listdir(tmp_path)) == ["last_checkpoint", "model_0000003",
                                            "model_0000005"]  # keep-last-2 pruned 0001
    assert sorted(os.listdir(tmp_path / "model_0000005")) == [
        ".metadata", "__0_0.distcp", "meta.json", "rank0.pt", "trainer.pt"]
    trainer.model.weight.data.fill_(float("nan"))
    checkpointer.load(last_checkpoint(str(tmp_path)))
    assert trainer.iter == 5 and trainer.data_loader.state_dict()["batches"] == 6
    assert torch.isfinite(trainer.model.weight).all()
    assert not (tmp_path / "model_final.pth").exists()  # the run did not finish


def test_resume_with_a_loader_without_state_is_refused_naming_its_class(tmp_path):
    trainer, checkpointer = _trainer(_LossModel(nan_at=100), tmp_path, period=1)
    trainer.train(0, 2)
    assert torch.load(tmp_path / "model_0000001" / "rank0.pt", weights_only=True)[
        "loader"] == {"batches": 2, "world_size": 1, "seed": 0}
    trainer.data_loader = [[torch.ones(3)]] * 4  # a list: no load_state_dict
    with pytest.raises(TypeError, match="list cannot resume at the checkpoint's data position"):
        checkpointer.load(str(tmp_path / "model_0000001"))


def test_stop_at_iter_saves_and_ends_the_loop(tmp_path):
    from mona_scale.engine.stopping import StopControl
    trainer, _ = _trainer(_LossModel(nan_at=100), tmp_path, period=1000)
    trainer.stopping = StopControl(stop_at_iter=4)  # 4 iterations: 0..3
    trainer.train(0, 10)
    assert trainer.iter == 3 and trainer.stop_requested
    assert (tmp_path / "last_checkpoint").read_text() == "model_0000003"
    assert not (tmp_path / "model_final.pth").exists()
    assert trainer.stopping.conclude(trainer.iter, 10) == 0  # deliberate: exit status 0


def test_stop_request_from_a_hook_stops_after_the_next_step_whatever_the_hook_order(tmp_path):
    trainer, _ = _trainer(_LossModel(nan_at=100), tmp_path, period=1000)

    class RequestAt3(HookBase):
        def after_step(self):
            if self.trainer.iter == 3:
                self.trainer.request_stop()

    trainer.register_hooks([RequestAt3()])  # after the checkpoint hook: no ordering needed
    trainer.train(0, 10)
    assert trainer.iter == 4  # decided in iteration 4's collective, saved by its hooks
    assert (tmp_path / "last_checkpoint").read_text() == "model_0000004"
    assert not (tmp_path / "model_final.pth").exists()


def test_finished_run_writes_consolidated_weights(tmp_path):
    trainer, _ = _trainer(_LossModel(nan_at=100), tmp_path, period=1000)
    trainer.train(0, 4)
    final = torch.load(tmp_path / "model_final.pth", weights_only=True)
    assert torch.equal(final["model"]["weight"], trainer.model.weight.detach())
    assert (tmp_path / "last_checkpoint").read_text() == "model_0000003"


def test_rng_state_round_trip():
    state = rng_state()
    first = (np.random.rand(), torch.rand(1).item())
    set_rng_state(state)
    assert (np.random.rand(), torch.rand(1).item()) == first
    json.dumps(state["python"][0])  # plain python, loadable with weights_only=True


class _Quadratic(nn.Module):
    """loss = sum((w * x)^2) over the batch rows: gradients are easy to predict."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.tensor([1.0, -2.0, 3.0]))

    def forward(self, batch):
        return {"loss": (self.weight * batch).square().sum(dim=1).mean()}


def _run(model, batches, precision="fp32", **kwargs):
    strategy = build_strategy("ddp", Precision(precision), **kwargs)
    model, optimizer = strategy.setup(model, lambda m: torch.optim.SGD(m.parameters(), lr=0.1))
    trainer = StrategyTrainer(model, iter(batches), optimizer, strategy)
    with EventStorage(0) as storage:
        trainer.iter = 0
        trainer.storage = storage
        trainer.run_step()
    return model, storage


def test_gradient_accumulation_equals_the_large_batch():
    a, b = torch.tensor([[1.0, 2.0, 3.0]]), torch.tensor([[0.5, -1.0, 2.0]])
    accumulated, _ = _run(_Quadratic(), [a, b], grad_accum=2)
    single, _ = _run(_Quadratic(), [torch.cat([a, b])])
    assert torch.allclose(accumulated.weight, single.weight, atol=1e-6)


def test_gradient_clipping_bounds_the_update_and_logs_the_norm():
    x = torch.tensor([[10.0, 10.0, 10.0]])
    model, storage = _run(_Quadratic(), [x], clip_grad=1.0)
    step = model.weight.detach() - torch.tensor([1.0, -2.0, 3.0])
    assert step.norm().item() == pytest.approx(0.1, rel=1e-4)  # lr * max_norm
    assert storage.latest()["grad_norm"][0] > 1.0


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_steps(precision):
    model, storage = _run(_Quadratic(), [torch.tensor([[1.0, 2.0, 3.0]])], precision=precision)
    assert not torch.equal(model.weight.detach(), torch.tensor([1.0, -2.0, 3.0]))
    assert torch.isfinite(model.weight).all() and "total_loss" in storage.latest()


def test_missing_dataset_names_path_and_layout():
    from mona_scale.data.catalog import get_dataset_dicts
    with pytest.raises(FileNotFoundError, match=r"instances_val2017.json(.|\n)*coco/annotations"):
        get_dataset_dicts("coco_2017_val")
    with pytest.raises(KeyError, match="not registered"):
        get_dataset_dicts("no_such_dataset")


def test_signal_checkpoints_and_stops_without_slurm(tmp_path, monkeypatch):
    import signal

    from mona_scale.engine.stopping import StopControl

    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    trainer, _ = _trainer(_LossModel(nan_at=100), tmp_path, period=1000)

    class SignalAt2(HookBase):
        def after_step(self):
            if self.trainer.iter == 2:
                os.kill(os.getpid(), signal.SIGUSR1)  # as SLURM does before the time limit

    trainer.register_hooks([SignalAt2()])
    trainer.stopping = control = StopControl()
    previous = signal.getsignal(signal.SIGUSR1)
    control.install()
    try:
        trainer.train(0, 10)
        status = control.conclude(trainer.iter, 10)
    finally:
        control.restore()
    assert trainer.iter == 3 and control.received == [signal.SIGUSR1]
    assert (tmp_path / "last_checkpoint").read_text() == "model_0000003"
    assert status == 128 + signal.SIGUSR1  # stopped early, no SLURM job to requeue
    assert signal.getsignal(signal.SIGUSR1) == previous  # handlers restored


def test_cuda_device_without_cuda_says_to_use_cpu():
    from mona_scale.engine.defaults import resolve_device
    assert resolve_device("cpu") == torch.device("cpu")
    if torch.cuda.is_available():
        assert resolve_device("cuda") == torch.device("cuda", torch.cuda.current_device())
        return
    with pytest.raises(ValueError, match=r"train.device='cuda'.*train.device=cpu"):
        resolve_device("cuda")


def test_tf32_on_cuda_only():
    from mona_scale.engine.defaults import configure_tf32
    before = (torch.get_float32_matmul_precision(), torch.backends.cudnn.allow_tf32)
    try:
        torch.set_float32_matmul_precision("highest")
        assert configure_tf32(True, "cpu") is False  # no-op on CPU
        assert torch.get_float32_matmul_precision() == "highest"
        assert configure_tf32(True, "cuda") is True
        assert torch.get_float32_matmul_precision() == "high"  # TF32 matmuls (torch docs)
        assert torch.backends.cudnn.allow_tf32 is True
        assert configure_tf32(False, "cuda") is False
        assert torch.get_float32_matmul_precision() == "highest"
        assert torch.backends.cudnn.allow_tf32 is False
    finally:
        torch.set_float32_matmul_precision(before[0])
        torch.backends.cudnn.allow_tf32 = before[1]


def test_train_loader_pins_memory_when_cuda_is_available():
    from mona_scale.data.loader import build_train_loader
    dataset = [{"x": i} for i in range(4)]
    loader = build_train_loader(dataset, mapper=dict, total_batch_size=2,
                                aspect_ratio_grouping=False)
    assert loader.pin_memory == torch.cuda.is_available()
    assert build_train_loader(dataset, mapper=dict, total_batch_size=2, pin_memory=False,
                              aspect_ratio_grouping=False).pin_memory is False
