from mona_scale.adapters import apply_tuning, parse_tuning, tuning_method_names
from mona_scale.adapters.report import REFERENCE_COUNTS, parameter_counts
from mona_scale.backbones import build_swin

import pytest
import torch

METHODS = ["full", "fixed", "bitfit", "ln", "partial-1", "adapter", "adaptformer", "lora",
           "mona"]


def test_registry_has_the_nine_methods_in_paper_order():
    assert tuning_method_names() == METHODS


@pytest.mark.parametrize("model,method", sorted(REFERENCE_COUNTS))
def test_reference_trainable_counts(model, method):
    expected, tolerance = REFERENCE_COUNTS[(model, method)]
    with torch.device("meta"):
        counts = parameter_counts(build_swin(model, method))
    assert abs(counts.trainable - expected) <= tolerance


def test_reference_table_covers_every_row_of_mona_md():
    assert len(REFERENCE_COUNTS) == 17
    assert REFERENCE_COUNTS[("swin_t", "mona")] == (1_408_128, 0)


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
    assert all(n.endswith(".bias") for n in _trainable(tiny_swin("bitfit")))
    assert "layers.0.blocks.0.attn.relative_position_bias_table" not in _trainable(
        tiny_swin("bitfit"))
    assert all("norm" in n for n in _trainable(tiny_swin("ln")))
    assert all(n.startswith("layers.3.blocks.1.") for n in _trainable(tiny_swin("partial-1")))
    full = tiny_swin("full")
    assert _trainable(full) == {n for n, _ in full.named_parameters()}


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
