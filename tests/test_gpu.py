"""On one CUDA GPU (marked ``gpu``; skipped without CUDA): a bf16 training step of the
Cascade Mask R-CNN quickstart under every strategy at world size 1 through
projects/train_net.py without a launcher, with evaluation; fused vs reference Mona in bf16;
the trainer's host synchronisations counted by CUDA's sync debug mode.

Run: pytest -m gpu tests/test_gpu.py   (tools/gpu_check.sh runs it on a lent GPU)
"""
import json
import math
import os
import subprocess
import sys

from mona_scale.adapters import Mona
from mona_scale.modeling import build_swin

import pytest
import torch
from helpers.train_net import CONFIG, ROOT, TINY  # the tiny quickstart detector run

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

LAUNCHER_VARIABLES = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR",
                      "MASTER_PORT", "SLURM_PROCID", "SLURM_NTASKS")
STRATEGIES = {"ddp": [], "fsdp": [], "deepspeed": ["train.deepspeed.stage=2"]}


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
def test_cuda_bf16_step_and_evaluation_at_world_size_1(tmp_path, strategy):
    """python projects/train_net.py ... train.device=cuda train.precision=bf16, one process,
    no RANK/LOCAL_RANK: three iterations, finite losses, then COCO evaluation."""
    out = tmp_path / strategy
    env = {k: v for k, v in os.environ.items() if k not in LAUNCHER_VARIABLES}
    env.update(MONA_DATASETS=str(tmp_path / "data"), OMP_NUM_THREADS="1",
               CUDA_VISIBLE_DEVICES=env.get("CUDA_VISIBLE_DEVICES", "0"))
    cmd = [sys.executable, os.path.join(ROOT, "projects/train_net.py"), "--config-file", CONFIG,
           *TINY, "train.max_iter=3", "train.checkpointer.period=100", "train.device=cuda",
           "train.precision=bf16", f"train.strategy={strategy}", *STRATEGIES[strategy],
           "train.wandb.enabled=False", f"train.output_dir={out}"]
    result = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, f"{strategy} failed:\n{result.stderr[-6000:]}"
    records = [json.loads(line) for line in (out / "metrics.json").read_text().splitlines()]
    steps = [r for r in records if "total_loss" in r]
    assert [r["iteration"] for r in steps] == [0, 1, 2]
    assert all(math.isfinite(r["total_loss"]) for r in steps)
    for key in ("bbox/AP", "segm/AP"):
        assert key in records[-1], key
    assert "process 0 of 1" in (out / "log.txt").read_text()


@pytest.mark.parametrize("recompute", [False, True])
def test_fused_matches_reference_mona_in_bf16(recompute):
    """Swin-B stage-1 width on CUDA under bf16 autocast: same dtype (fp32 residual stream),
    outputs and gradients within bf16 rounding of the branch."""
    device = torch.device("cuda")
    fused = Mona(128, dropout=0.0, fused=True, recompute=recompute)
    with torch.no_grad():  # move gamma, the norm and the convs off their initial values
        for p in fused.parameters():
            p.add_(torch.randn_like(p) * 0.2)
    reference = Mona(128, dropout=0.0, fused=False)
    reference.load_state_dict(fused.state_dict())
    fused, reference = fused.to(device), reference.to(device)
    x = torch.randn(2, 48 * 40, 128, device=device)
    x_f, x_r = x.clone().requires_grad_(), x.clone().requires_grad_()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out_f, out_r = fused(x_f, (48, 40)), reference(x_r, (48, 40))
    assert out_f.dtype == out_r.dtype == torch.float32
    branch = (out_r.detach() - x).abs().max()
    assert (out_f - out_r).abs().max() <= 2 ** -5 * branch
    grad_out = torch.randn_like(out_f)
    out_f.backward(grad_out)
    out_r.backward(grad_out)
    assert x_f.grad.dtype == torch.float32
    assert (x_f.grad - x_r.grad).abs().max() <= 2 ** -5 * (x_r.grad - grad_out).abs().max()
    ref_params = dict(reference.named_parameters())
    for name, p in fused.named_parameters():
        expected = ref_params[name].grad
        assert p.grad.dtype == torch.float32, name
        assert (p.grad - expected).abs().max() <= 2 ** -4 * expected.abs().max(), name


def test_fused_matches_reference_swin_in_bf16():
    """A whole Mona-tuned Swin-T on CUDA under bf16: fused and reference paths agree."""
    device = torch.device("cuda")
    torch.manual_seed(0)
    fused = build_swin("swin_t", {"method": "mona", "fused": True}, drop_path_rate=0.0)
    reference = build_swin("swin_t", {"method": "mona", "fused": False}, drop_path_rate=0.0)
    reference.load_state_dict(fused.state_dict())
    fused, reference = fused.to(device).eval(), reference.to(device).eval()
    images = torch.randn(2, 3, 256, 320, device=device)
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
        feats_f, feats_r = fused(images), reference(images)
    for name, ref in feats_r.items():
        assert feats_f[name].dtype == ref.dtype, name
        scale = ref.float().abs().max()
        assert (feats_f[name].float() - ref.float()).abs().max() <= 2 ** -4 * scale, name


class _TwoLosses(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(64, 64)

    def forward(self, batch):
        out = self.linear(batch)
        return {"loss_a": out.square().mean(), "loss_b": out.abs().mean()}


def test_one_host_sync_per_training_step():
    """CUDA's own sync detector counts the trainer's device-to-host synchronisations: one per
    step (loss terms and grad norm copied together), with clipping on and two loss terms."""
    import warnings

    from mona_scale.engine.precision import Precision
    from mona_scale.engine.strategies import build_strategy
    from mona_scale.engine.trainer import StrategyTrainer

    strategy = build_strategy("ddp", Precision("fp32", "cuda"), clip_grad=1.0)
    model, optimizer = strategy.setup(_TwoLosses().cuda(), lambda m: torch.optim.SGD(
        m.parameters(), lr=1e-3, foreach=True))
    batch = torch.randn(8, 64, device="cuda")
    trainer = StrategyTrainer(model, iter(lambda: batch, None), optimizer, strategy)
    trainer.train(0, 2)  # warm-up: lazy initialisations
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            trainer.train(2, 5)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    syncs = [w for w in caught if "synchroniz" in str(w.message)]
    assert len(syncs) == 3, [str(w.message) for w in syncs]
