from mona_scale.adapters import TUNING_METHODS, apply_tuning, parse_tuning
from mona_scale.modeling import build_swin
from mona_scale.tuning_report import parameter_counts

import pytest
import torch

METHODS = ["full", "fixed", "bitfit", "ln", "partial-1", "adapter", "adaptformer", "lora",
           "mona"]


def test_registry_has_the_nine_methods_in_paper_order():
    assert TUNING_METHODS.names() == METHODS


# Trainable backbone parameters the authors' code and logs give (detection Swin with four
# outputs, norm0..norm3), written here from their figures, not imported from the report:
# (model, method) -> (count, tolerance); Swin-L partial-1 is given as "28.34M".
AUTHORS_COUNTS = {
    ("swin_l", "full"): (194_998_164, 0), ("swin_b", "full"): (86_745_016, 0),
    ("swin_l", "fixed"): (0, 0), ("swin_b", "fixed"): (0, 0),
    ("swin_l", "bitfit"): (302_484, 0), ("swin_b", "bitfit"): (201_656, 0),
    ("swin_l", "ln"): (89_088, 0), ("swin_b", "ln"): (59_392, 0),
    ("swin_l", "partial-1"): (28_340_000, 5_000), ("swin_b", "partial-1"): (12_601_632, 0),
    ("swin_l", "adapter"): (4_659_456, 0), ("swin_l", "adaptformer"): (2_329_728, 0),
    ("swin_l", "lora"): (4_620_288, 0),
    ("swin_l", "mona"): (5_267_712, 0), ("swin_b", "mona"): (3_667_456, 0),
    ("swin_t", "mona"): (1_408_128, 0), ("swin_t", "fixed"): (0, 0),
}


@pytest.mark.parametrize("model,method", sorted(AUTHORS_COUNTS))
def test_authors_trainable_counts(model, method):
    expected, tolerance = AUTHORS_COUNTS[(model, method)]
    with torch.device("meta"):
        counts = parameter_counts(build_swin(model, method))
    assert abs(counts.trainable - expected) <= tolerance


def test_report_marks_every_authors_count_as_matching():
    from mona_scale.tuning_report import tuning_table
    for model in ("swin_b", "swin_l"):
        rows = {r["method"]: r for r in tuning_table(model)}
        for (name, method), (expected, tolerance) in AUTHORS_COUNTS.items():
            if name == model:
                assert rows[method]["match"] is True, (model, method)
                assert abs(rows[method]["reference"] - expected) <= tolerance


@pytest.mark.parametrize("ours,timm_name,widths", [
    ("swin_b", "swin_base_patch4_window7_224", (128, 256, 512, 1024)),
    ("swin_l", "swin_large_patch4_window7_224", (192, 384, 768, 1536)),
])
def test_bitfit_follows_the_authors_rule_counted_on_timm(ours, timm_name, widths):
    """The authors' rule: every parameter whose name contains 'bias'. Counted independently
    on timm's classification Swin: drop its head and final-norm biases, add the biases of the
    detection backbone's four output norms (one per stage width)."""
    import timm
    with torch.device("meta"):
        reference = timm.create_model(timm_name, pretrained=False)
        swin = build_swin(ours, "bitfit")
    timm_bias = sum(p.numel() for n, p in reference.named_parameters() if "bias" in n)
    tables = sum(p.numel() for n, p in reference.named_parameters()
                 if "relative_position_bias_table" in n)
    expected = (timm_bias - reference.head.fc.bias.numel() - reference.norm.bias.numel()
                + sum(widths))
    assert parameter_counts(swin).trainable == expected
    assert tables > 0 and sum(p.numel() for n, p in swin.named_parameters()
                              if p.requires_grad and "relative_position_bias_table" in n) == tables


def _trainable(module):
    return {n for n, p in module.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("method,part", [("mona", "my_module_"), ("adapter", "_adapter."),
                                         ("adaptformer", "parallel_adapter."),
                                         ("lora", ".lora_")])
def test_only_adapters_train(tiny_swin, method, part):
    swin = tiny_swin(method)
    names = _trainable(swin)
    assert names and all(part in n for n in names)
    assert all(part not in n for n, p in swin.named_parameters() if not p.requires_grad)


def test_selective_methods(tiny_swin):
    assert _trainable(tiny_swin("fixed")) == set()
    bitfit = tiny_swin("bitfit")
    assert _trainable(bitfit) == {n for n, _ in bitfit.named_parameters() if "bias" in n}
    assert "layers.0.blocks.0.attn.relative_position_bias_table" in _trainable(bitfit)
    assert all("norm" in n for n in _trainable(tiny_swin("ln")))
    assert all(n.startswith("layers.3.blocks.1.") for n in _trainable(tiny_swin("partial-1")))
    full = tiny_swin("full")
    assert _trainable(full) == {n for n, _ in full.named_parameters()}


@pytest.mark.parametrize("method", ["full", "bitfit", "ln", "mona"])
def test_frozen_stages_freezes_like_mmdet_swin(tiny_swin, method):
    """frozen_stages=1 (the authors' VOC runs): the patch embedding is frozen on top of the
    method; 3: stages 1 and 2 as well; -1: the method alone."""
    plain = _trainable(tiny_swin(method))
    one = _trainable(tiny_swin({"method": method, "frozen_stages": 1}))
    assert one == {n for n in plain if not n.startswith("patch_embed.")}
    if method in ("full", "bitfit", "ln"):
        assert one != plain
    three = _trainable(tiny_swin({"method": method, "frozen_stages": 3}))
    assert three == {n for n in one if not n.startswith(("layers.0.", "layers.1."))}
    assert any(n.startswith("layers.2.") for n in three)


def test_neck_and_head_stay_trainable(tiny_swin):
    from detectron2.modeling.backbone.fpn import FPN
    fpn = FPN(bottom_up=tiny_swin("mona"), in_features=["res2", "res3", "res4", "res5"],
              out_channels=16)
    neck = [p for n, p in fpn.named_parameters() if not n.startswith("bottom_up.")]
    assert neck and all(p.requires_grad for p in neck)
    assert all(not p.requires_grad or "my_module_" in n
               for n, p in fpn.bottom_up.named_parameters())


def test_unknown_method_and_option_name_the_key():
    with pytest.raises(ValueError, match="tuning.method='prompt'"):
        parse_tuning("prompt")
    with pytest.raises(ValueError, match="tuning.width"):
        parse_tuning({"method": "mona", "width": 3})
    assert parse_tuning({"method": "mona", "bottleneck": 32})[1].bottleneck == 32


def test_cannot_tune_twice(tiny_swin):
    with pytest.raises(RuntimeError, match="already tuned"):
        apply_tuning(tiny_swin("mona"), "lora")


def test_lora_starts_as_the_base_model(tiny_swin):
    base = tiny_swin("fixed").eval()
    lora = tiny_swin("lora").eval()
    lora.load_state_dict(base.state_dict(), strict=False)
    x = torch.randn(1, 3, 64, 96)
    for name, value in base(x).items():
        assert torch.allclose(lora(x)[name], value, atol=1e-6)


@pytest.mark.parametrize("checkpointing", [False, True])
def test_gradients_reach_adapters_only(tiny_swin, checkpointing):
    swin = tiny_swin("mona", activation_checkpointing=checkpointing)
    outs = swin(torch.randn(2, 3, 72, 100))
    sum(o.square().mean() for o in outs.values()).backward()
    for name, p in swin.named_parameters():
        if "my_module_" in name:
            assert p.grad is not None and p.grad.abs().sum() > 0, name
        else:
            assert p.grad is None, name


def test_checkpointing_gives_the_same_gradients(tiny_swin):
    plain = tiny_swin("mona")
    ckpt = tiny_swin("mona", activation_checkpointing=True)
    ckpt.load_state_dict(plain.state_dict())
    x = torch.randn(1, 3, 64, 64)
    for model in (plain, ckpt):
        torch.manual_seed(1)  # same dropout masks
        sum(o.sum() for o in model(x).values()).backward()
    ckpt_params = dict(ckpt.named_parameters())
    for name, p in plain.named_parameters():
        if p.grad is not None:
            assert torch.allclose(p.grad, ckpt_params[name].grad, atol=1e-5), name


def test_frozen_does_not_mean_eval(tiny_swin):
    swin = tiny_swin("mona", drop_path_rate=0.3).train()
    x = torch.randn(1, 3, 64, 64)
    assert not torch.equal(swin(x)["res5"], swin(x)["res5"])
    swin.eval()
    assert torch.equal(swin(x)["res5"], swin(x)["res5"])


def test_adapter_keys_are_named_by_the_slots():
    from mona_scale.adapter_slots import is_adapter_key

    assert is_adapter_key("layers.0.blocks.1.my_module_2.adapter_conv.conv1.weight")
    assert is_adapter_key("backbone.bottom_up.layers.3.blocks.0.attn.qkv.lora_v_B")
    assert is_adapter_key("layers.1.blocks.0.parallel_adapter.down.bias")
    assert not is_adapter_key("layers.1.blocks.0.attn.qkv.weight")
    assert not is_adapter_key("norm0.weight")
    assert not is_adapter_key("layers.1.blocks.0.mlp.fc1.bias")


@pytest.mark.parametrize("method", ["mona", "adapter", "adaptformer", "lora"])
def test_what_a_method_adds_is_exactly_the_adapter_keys(tiny_swin, method):
    """Every tensor a method inserts, and nothing of the bare Swin, is an adapter key (the
    loader's way to tell adapters from pretrained weights)."""
    from mona_scale.adapter_slots import is_adapter_key

    bare = set(tiny_swin("full").state_dict())
    tuned = set(tiny_swin(method).state_dict())
    assert bare <= tuned
    assert {k for k in tuned if is_adapter_key(k)} == tuned - bare != set()
