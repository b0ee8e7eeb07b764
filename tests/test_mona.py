from mona_scale.adapters import Mona

import pytest
import torch

REFERENCE_NAMES = {
    "norm.weight", "norm.bias", "gamma", "gammax", "project1.weight", "project1.bias",
    "project2.weight", "project2.bias", "adapter_conv.conv1.weight", "adapter_conv.conv1.bias",
    "adapter_conv.conv2.weight", "adapter_conv.conv2.bias", "adapter_conv.conv3.weight",
    "adapter_conv.conv3.bias", "adapter_conv.projector.weight", "adapter_conv.projector.bias"}


@pytest.mark.parametrize("dim", [96, 128, 1536])
def test_parameter_names_and_count(dim):
    mona = Mona(dim)
    assert {n for n, _ in mona.named_parameters()} == REFERENCE_NAMES
    count = sum(p.numel() for p in mona.parameters())
    assert count == 133 * dim + 9728  # the authors' module: 4C + 2*64*C + 64 + C + 9664
    assert mona.adapter_conv.conv1.weight.shape == (64, 1, 3, 3)
    assert mona.adapter_conv.conv3.weight.shape == (64, 1, 7, 7)


def test_initialisation_is_the_reference_one():
    mona = Mona(256)
    assert torch.all(mona.gamma == 1e-6) and torch.all(mona.gammax == 1.0)
    assert torch.all(mona.norm.weight == 1) and torch.all(mona.norm.bias == 0)
    for linear in (mona.project1, mona.project2):
        assert torch.all(linear.bias == 0)
        assert abs(linear.weight.std().item() - 0.02) < 0.002
    assert mona.norm.eps == 1e-5 and mona.dropout.p == 0.1
    # default Conv2d init (kaiming-uniform), not zero: the adapter is not an identity
    assert mona.adapter_conv.projector.weight.abs().sum() > 0
    x = torch.randn(2, 6 * 5, 256)
    assert not torch.allclose(mona.eval()(x, (6, 5)), x)


def _randomise(mona: Mona) -> None:
    with torch.no_grad():
        mona.gamma.normal_(0, 0.5)
        mona.gammax.normal_(1, 0.5)
        mona.norm.weight.normal_(1, 0.2)
        mona.norm.bias.normal_(0, 0.2)


@pytest.mark.parametrize("hw", [(7, 7), (9, 13), (1, 5), (16, 12)])
def test_fused_matches_reference(hw):
    fused = Mona(96, dropout=0.0, fused=True)
    _randomise(fused)
    reference = Mona(96, dropout=0.0, fused=False)
    reference.load_state_dict(fused.state_dict())
    x = torch.randn(2, hw[0] * hw[1], 96)
    x_f, x_r = x.clone().requires_grad_(), x.clone().requires_grad_()
    out_f, out_r = fused(x_f, hw), reference(x_r, hw)
    assert (out_f - out_r).abs().max() <= 1e-5
    grad_out = torch.randn_like(out_f)
    out_f.backward(grad_out)
    out_r.backward(grad_out)
    assert (x_f.grad - x_r.grad).abs().max() <= 1e-5
    ref_params = dict(reference.named_parameters())
    for name, p in fused.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
        assert (p.grad - ref_params[name].grad).abs().max() <= 1e-5, name


def test_dropout_is_active_in_training_only():
    mona = Mona(32)
    _randomise(mona)
    x = torch.randn(1, 64, 32)
    mona.train()
    assert not torch.equal(mona(x, (8, 8)), mona(x, (8, 8)))
    mona.eval()
    assert torch.equal(mona(x, (8, 8)), mona(x, (8, 8)))


def test_token_count_must_match_map():
    with pytest.raises(ValueError, match="63 tokens for a 8x8 map"):
        Mona(32)(torch.randn(1, 63, 32), (8, 8))


def test_recompute_gives_the_same_output_and_gradients():
    plain = Mona(48)
    _randomise(plain)
    recompute = Mona(48, recompute=True)
    recompute.load_state_dict(plain.state_dict())
    x = torch.randn(2, 35, 48)
    grads = []
    for mona in (plain, recompute):
        torch.manual_seed(3)  # same dropout mask
        inp = x.clone().requires_grad_()
        out = mona(inp, (5, 7))
        out.square().sum().backward()
        grads.append((out.detach(), inp.grad, [p.grad for p in mona.parameters()]))
    assert torch.allclose(grads[0][0], grads[1][0], atol=1e-6)
    assert torch.allclose(grads[0][1], grads[1][1], atol=1e-5)
    for a, b in zip(grads[0][2], grads[1][2], strict=True):
        assert torch.allclose(a, b, atol=1e-5)


@pytest.mark.parametrize("fused", [True, False])
def test_residual_keeps_the_input_dtype_under_autocast(fused):
    mona = Mona(32, dropout=0.0, fused=fused)
    x = torch.randn(2, 20, 32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert mona.branch(x, (4, 5)).dtype == torch.bfloat16  # the branch is half precision
        out = mona(x, (4, 5))
    assert out.dtype == torch.float32


@pytest.mark.parametrize("recompute", [False, True])
def test_fused_matches_reference_under_bf16_autocast(recompute):
    fused = Mona(96, dropout=0.0, fused=True, recompute=recompute)
    _randomise(fused)
    reference = Mona(96, dropout=0.0, fused=False)
    reference.load_state_dict(fused.state_dict())
    x = torch.randn(2, 9 * 13, 96)
    x_f, x_r = x.clone().requires_grad_(), x.clone().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out_f, out_r = fused(x_f, (9, 13)), reference(x_r, (9, 13))
    assert out_f.dtype == out_r.dtype == torch.float32
    # the residual is exact in fp32: only the branch carries bf16 rounding (8 bits)
    branch = out_r.detach() - x
    assert (out_f - out_r).abs().max() <= 2 ** -6 * branch.abs().max()
    grad_out = torch.randn_like(out_f)
    out_f.backward(grad_out)
    out_r.backward(grad_out)
    assert x_f.grad.dtype == torch.float32
    # d out / d x = I + d branch / d x: the identity part is exact, the rest is bf16
    assert (x_f.grad - x_r.grad).abs().max() <= 2 ** -6 * (x_r.grad - grad_out).abs().max()
    ref_params = dict(reference.named_parameters())
    for name, p in fused.named_parameters():
        expected = ref_params[name].grad
        assert p.grad.dtype == torch.float32, name
        assert (p.grad - expected).abs().max() <= 2 ** -5 * expected.abs().max(), name


@pytest.mark.parametrize("dtype", [None, torch.bfloat16])
def test_output_is_not_a_view(dtype):
    # FSDP2 warns on every rank (and can skip its pre-backward all-gather after an in-place
    # op) when a sharded block returns a view; Mona is the last op of a Swin block
    mona = Mona(32, dropout=0.0)
    with torch.autocast("cpu", dtype=dtype or torch.float32, enabled=dtype is not None):
        out = mona(torch.randn(2, 20, 32, requires_grad=True), (4, 5))
    assert out._base is None


def test_dropout_mask_statistics():
    from mona_scale.adapters.mona import dropout_mask
    torch.manual_seed(0)
    n = 1 << 20
    drop, scale = dropout_mask((n,), 0.1)
    keep = ~drop
    assert keep.dtype == torch.bool and keep.shape == (n,)
    # p_eff = round(0.1 * 2^15) / 2^15 = 3277 / 32768; scale = 32768 / 29491
    assert scale == pytest.approx(32768 / 29491, rel=1e-12)
    # keep rate within 5 binomial standard deviations (sd = sqrt(0.09 / n) ~ 3e-4), in each of
    # the four 16-bit positions a 64-bit random word feeds (the top one has 15 bits)
    per_position = keep.view(-1, 4).double().mean(0)
    assert torch.all((per_position - 0.9).abs() < 5 * (0.09 / (n / 4)) ** 0.5), per_position
    # neighbours from the same word are independent: P(both kept) ~ 0.81
    pairs = keep.view(-1, 4)
    both = (pairs[:, 0] & pairs[:, 3]).double().mean()
    assert abs(both - 0.81) < 5 * (0.81 * 0.19 / (n / 4)) ** 0.5
    # odd sizes and shapes
    drop, _ = dropout_mask((3, 5, 7), 0.5)
    assert drop.shape == (3, 5, 7)
    assert not dropout_mask((10,), 0.0)[0].any()
    with pytest.raises(ValueError, match="must be in"):
        dropout_mask((4,), 1.0)


@pytest.mark.parametrize("autocast", [False, True])
def test_fused_training_dropout_matches_reference_with_the_same_mask(autocast):
    # the fused path's training output and gradients equal the reference layers applied by
    # hand with the mask the fused path draws (same seed): gelu, mask, 1 / (1 - p_eff)
    from mona_scale.adapters.mona import dropout_mask
    fused = Mona(64, dropout=0.25, fused=True).train()
    _randomise(fused)
    reference = Mona(64, dropout=0.25, fused=False).train()
    reference.load_state_dict(fused.state_dict())
    hw = (6, 7)
    x = torch.randn(2, 42, 64)
    x_f, x_r = x.clone().requires_grad_(), x.clone().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        torch.manual_seed(5)
        out_f = fused(x_f, hw)
        torch.manual_seed(5)
        drop, scale = dropout_mask((2, 42, 64), 0.25)
        keep = ~drop
        assert 0 < keep.sum() < keep.numel()
        z = reference.filter_stage(reference.project1(reference.scaled_norm(x_r)), hw)
        h = torch.nn.functional.gelu(z) * keep * scale
        out_r = x_r + reference.project2(h)
    tol = 2 ** -6 if autocast else 1e-5
    branch = (out_r - x).detach().abs().max()
    assert (out_f - out_r).abs().max() <= tol * branch
    grad_out = torch.randn_like(out_f)
    out_f.backward(grad_out)
    out_r.backward(grad_out)
    assert (x_f.grad - x_r.grad).abs().max() <= tol * (x_r.grad - grad_out).abs().max()
    ref_params = dict(reference.named_parameters())
    for name, p in fused.named_parameters():
        expected = ref_params[name].grad
        assert (p.grad - expected).abs().max() <= 2 * tol * expected.abs().max(), name


def test_fused_runs_with_bf16_parameters_under_bf16_autocast():
    """FSDP's ``param_dtype=bf16`` hands the adapter bf16 weights and a bf16 map; the fused
    path's fp32 depthwise convolution must cast its weights too, and agree with the
    reference layers holding the same bf16 weights."""
    fused = Mona(96, dropout=0.0, fused=True)
    _randomise(fused)
    reference = Mona(96, dropout=0.0, fused=False)
    reference.load_state_dict(fused.state_dict())
    fused, reference = fused.to(torch.bfloat16), reference.to(torch.bfloat16)
    x = torch.randn(2, 9 * 13, 96, dtype=torch.bfloat16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out_f, out_r = fused(x, (9, 13)), reference(x, (9, 13))
    assert out_f.dtype == out_r.dtype == torch.bfloat16
    # both outputs are rounded to bf16 (8 bits): compare at the output's scale
    assert (out_f.float() - out_r.float()).abs().max() <= 2 ** -5 * out_r.float().abs().max()
