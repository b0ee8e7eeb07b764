"""Swin's two window-attention branches agree: the fused ``scaled_dot_product_attention``
branch (taken for CUDA tensors) and the explicit ``softmax(q k^T + bias) v`` branch (taken
on CPU), on maps off the 7x7 window grid (padded windows) with the shifted-window masks:
outputs, and gradients of the input and of every parameter (the relative-position table
included).

SDPA runs on CPU too, so the test runs the fused branch on CPU: the input is given a tensor
subclass whose ``is_cuda`` reads True (every other operation is the plain CPU one), and a
``TorchFunctionMode`` records which attention was called, so a branch that is never taken
fails the test instead of comparing the explicit branch with itself."""
from mona_scale.backbones.swin import SwinStage, shifted_window_mask

import pytest
import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode


class _CudaLike(torch.Tensor):
    """A CPU tensor that answers ``is_cuda`` with True (results of ops on it stay this
    class), to route Swin's attention into its CUDA branch on a machine without a GPU."""

    @property
    def is_cuda(self) -> bool:
        return True


class _CountSDPA(TorchFunctionMode):
    """Counts calls of ``F.scaled_dot_product_attention`` (the call itself runs unchanged)."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func is F.scaled_dot_product_attention:
            self.calls += 1
        return func(*args, **(kwargs or {}))


def _stage_outputs(stage, x, hw, cuda_like: bool):
    """Run ``stage`` on ``x`` and backpropagate a fixed random projection of its output.

    Returns:
        (output, gradient of x, {parameter name: gradient}, SDPA calls).
    """
    stage.zero_grad(set_to_none=True)
    leaf = x.detach().clone().requires_grad_(True)
    counter = _CountSDPA()
    with counter:
        out = stage(leaf.as_subclass(_CudaLike) if cuda_like else leaf, hw)
    out = out.as_subclass(torch.Tensor)
    weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(1))
    (out * weights).sum().backward()
    grads = {n: p.grad.detach().clone() for n, p in stage.named_parameters()}
    return out.detach(), leaf.grad.detach(), grads, counter.calls


# float64: the two branches agree to rounding; float32: SDPA's own CPU kernel
TOLERANCE = {torch.float64: dict(rtol=1e-9, atol=1e-10), torch.float32: dict(rtol=1e-4,
                                                                             atol=1e-5)}


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("hw", [(45, 61), (9, 13), (7, 7)])
def test_sdpa_branch_equals_explicit_branch_off_the_window_grid(hw, dtype):
    torch.manual_seed(0)
    # one unshifted and one shifted block, 2 heads, 7x7 windows (Swin's own)
    stage = SwinStage(dim=32, depth=2, num_heads=2, window_size=7, drop_paths=[0.0, 0.0],
                      downsample=False).to(dtype)
    with torch.no_grad():  # a non-zero relative-position bias, so its gradient is exercised
        for block in stage.blocks:
            block.attn.relative_position_bias_table.normal_(std=0.5)
    assert stage.blocks[1].shift_size == 3 and stage.blocks[0].shift_size == 0
    x = torch.randn(2, hw[0] * hw[1], 32, dtype=dtype)  # batch 2: masks repeat per image
    ref, ref_dx, ref_grads, ref_calls = _stage_outputs(stage, x, hw, cuda_like=False)
    out, dx, grads, calls = _stage_outputs(stage, x, hw, cuda_like=True)
    assert ref_calls == 0 and calls == 2, (ref_calls, calls)  # each branch really ran
    tolerance = TOLERANCE[dtype]
    torch.testing.assert_close(out, ref, **tolerance)
    torch.testing.assert_close(dx, ref_dx, **tolerance)
    assert sorted(grads) == sorted(ref_grads)
    for name, expected in ref_grads.items():
        assert expected.abs().sum() > 0, name  # every parameter takes part
        torch.testing.assert_close(grads[name], expected, **tolerance, msg=name)


def test_shifted_masks_change_the_output():
    """The comparison above is sensitive to the mask: dropping it from the shifted block of
    a padded map changes the output (so a branch that ignored it would fail there)."""
    torch.manual_seed(0)
    stage = SwinStage(dim=32, depth=2, num_heads=2, window_size=7, drop_paths=[0.0, 0.0],
                      downsample=False).double()
    hw = (45, 61)
    x = torch.randn(1, hw[0] * hw[1], 32, dtype=torch.float64)
    with torch.no_grad():
        block = stage.blocks[1]
        masked = block(x, hw, _mask(stage, hw))
        unmasked = block(x, hw, torch.zeros_like(_mask(stage, hw)))
    assert (masked - unmasked).abs().max() > 1e-3


def _mask(stage, hw):
    ws = stage.window_size
    return shifted_window_mask(-(-hw[0] // ws) * ws, -(-hw[1] // ws) * ws, ws,
                               torch.device("cpu")).double()
