"""The tuning report's compute column: fvcore's forward FLOPs per method."""
import math

from mona_scale import tuning_report
from mona_scale.modeling import build_swin
from mona_scale.tuning_report import main, tuning_table

import pytest
import torch
import torch.nn.functional as F
from fvcore.nn import FlopCountAnalysis

TINY = dict(embed_dim=32, depths=(2, 2, 2, 2), num_heads=(1, 2, 4, 8), drop_path_rate=0.0)
SIZE = 64


def _explicit_attention(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None):
    """Attention written as its two matrix products, which fvcore counts natively."""
    weights = (q * (scale or q.shape[-1] ** -0.5)) @ k.transpose(-2, -1)
    if attn_mask is not None:
        weights = weights + attn_mask
    return weights.softmax(-1) @ v


def _plain_swin_flops(monkeypatch) -> float:
    """fvcore on a plain tiny Swin, attention made explicit, no handle of ours."""
    monkeypatch.setattr(F, "scaled_dot_product_attention", _explicit_attention)
    swin = build_swin("swin_t", "full", **TINY).eval()
    analysis = FlopCountAnalysis(swin, torch.zeros(1, 3, SIZE, SIZE))
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    return float(analysis.total())


@pytest.mark.slow
def test_fixed_equals_fvcore_on_a_plain_swin(monkeypatch):
    with monkeypatch.context() as patch:
        expected = _plain_swin_flops(patch)
    rows = {r["method"]: r for r in _tiny_table(
        monkeypatch, ["fixed", "full", "bitfit", "ln", "partial-1"])}
    assert rows["fixed"]["GFLOPs"] * 1e9 == pytest.approx(expected, rel=1e-9)
    # selective methods change which weights train, not the forward pass
    for method in ("full", "bitfit", "ln", "partial-1"):
        assert rows[method]["GFLOPs"] == rows["fixed"]["GFLOPs"]
        assert rows[method]["extra compute %"] == 0


def _tiny_table(monkeypatch, methods=None):
    def tiny(name, method):
        return build_swin(name, method, **TINY)
    monkeypatch.setattr(tuning_report, "build_swin", tiny)
    return tuning_table("swin_t", SIZE, methods=methods)


def test_mona_adds_its_adapters_flops(monkeypatch):
    """Mona's extra compute, counted by hand per adapter and token: the two linears
    (C -> 64 -> C: 128 C), the LayerNorm (5 C in fvcore's count), the fused depthwise 7x7
    (49 x 64) and the 1x1 aggregation (64 x 64); two adapters per block, two blocks per
    stage, (SIZE / 4 / 2^i)^2 tokens in stage i."""
    rows = {r["method"]: r for r in _tiny_table(monkeypatch, ["mona"])}
    extra = (rows["mona"]["GFLOPs"] - rows["fixed"]["GFLOPs"]) * 1e9
    widths = [32 * 2 ** i for i in range(4)]
    tokens = [(SIZE // 4 // 2 ** i) ** 2 for i in range(4)]
    linears = sum(2 * 2 * n * 128 * c for n, c in zip(tokens, widths, strict=True))
    adapters = sum(2 * 2 * n * (128 * c + 5 * c + 49 * 64 + 64 * 64)
                   for n, c in zip(tokens, widths, strict=True))
    assert linears < extra < 3 * linears  # the order of magnitude of the linears
    assert extra == pytest.approx(adapters, rel=1e-3)
    assert rows["mona"]["extra compute %"] == pytest.approx(
        100 * extra / (rows["fixed"]["GFLOPs"] * 1e9), abs=0.01)


@pytest.mark.slow
def test_cli_prints_gflops_and_the_size(capsys, monkeypatch):
    monkeypatch.setattr(tuning_report, "build_swin",
                        lambda name, method: build_swin(name, method, **TINY))
    assert main(["--model", "swin_s", "--size", str(SIZE)]) == 0  # no authors' count for S
    out = capsys.readouterr().out
    assert "GFLOPs of one 64x64 forward" in out and "extra compute %" in out
    mona_line = next(line for line in out.splitlines() if line.strip().startswith("mona"))
    assert math.isfinite(float(mona_line.split()[-1])) and float(mona_line.split()[-1]) > 0


@pytest.mark.slow
def test_swin_b_mona_costs_about_six_percent_more():
    """Swin-B at 224: the frozen backbone's 15.4 GFLOPs (the Swin paper's figure) and Mona's
    extra compute of about 6.5 % for about 4 % trainable parameters."""
    rows = {r["method"]: r for r in tuning_table("swin_b", 224, methods=["fixed", "mona"])}
    assert rows["fixed"]["GFLOPs"] == pytest.approx(15.4, abs=0.1)
    assert 5.5 < rows["mona"]["extra compute %"] < 7.5
    assert 3.5 < rows["mona"]["share %"] < 4.5
