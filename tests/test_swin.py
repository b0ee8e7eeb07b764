import math

from mona_scale.backbones.pretrained import load_pretrained
from mona_scale.backbones.swin import shifted_window_mask
from mona_scale.modeling import build_swin

import pytest
import torch


@pytest.mark.parametrize("size", [(200, 312), (61, 97), (33, 45), (224, 224), (29, 230)])
def test_any_input_size(tiny_swin, size):
    swin = tiny_swin("mona").eval()
    outs = swin(torch.randn(1, 3, *size))
    h, w = math.ceil(size[0] / 4), math.ceil(size[1] / 4)
    for i, name in enumerate(["res2", "res3", "res4", "res5"]):
        assert outs[name].shape == (1, 32 * 2 ** i, h, w), name
        assert torch.isfinite(outs[name]).all()
        h, w = math.ceil(h / 2), math.ceil(w / 2)


def test_output_shape_contract():
    with torch.device("meta"):
        swin = build_swin("swin_b", "mona")
    shapes = swin.output_shape()
    assert list(shapes) == ["res2", "res3", "res4", "res5"]
    assert [s.stride for s in shapes.values()] == [4, 8, 16, 32]
    assert [s.channels for s in shapes.values()] == [128, 256, 512, 1024]


def test_out_features_subset_and_unknown(tiny_swin):
    swin = tiny_swin("fixed", out_features=["res3", "res5"]).eval()
    assert set(swin(torch.randn(1, 3, 64, 64))) == {"res3", "res5"}
    assert not hasattr(swin, "norm0") and hasattr(swin, "norm1")
    with pytest.raises(ValueError, match="res6"):
        tiny_swin("fixed", out_features=["res6"])


def test_drop_path_grows_linearly():
    with torch.device("meta"):
        swin = build_swin("swin_t", "fixed", drop_path_rate=0.3)
    rates = [b.drop_path.rate for b in swin.blocks]
    assert len(rates) == 12 and rates[0] == 0.0 and rates[-1] == pytest.approx(0.3)
    steps = [b - a for a, b in zip(rates[:-1], rates[1:], strict=True)]
    assert all(s == pytest.approx(0.3 / 11) for s in steps)
    assert [b.shift_size for b in swin.layers[2].blocks] == [0, 3, 0, 3, 0, 3]


def test_shifted_mask_on_one_window_map():
    # a 7x7 map is one window; the shift still splits it into rows/cols {0..3} and {4..6}
    mask = shifted_window_mask(7, 7, 7, torch.device("cpu"))
    assert mask.shape == (1, 49, 49)
    region = [(r >= 4) * 3 + (c >= 4) for r in range(7) for c in range(7)]
    expected = torch.tensor([[0.0 if a == b else -100.0 for b in region] for a in region])
    assert torch.equal(mask[0], expected)


def test_padded_map_masks_every_window():
    mask = shifted_window_mask(14, 21, 7, torch.device("cpu"))
    assert mask.shape == (6, 49, 49)
    assert torch.all(mask[0] == 0)  # top-left window holds one region
    assert (mask[-1] == -100).any()  # bottom-right window mixes wrapped regions


def test_matches_timm_swin_on_window_multiples():
    """An independent implementation (timm, always_partition) with the same weights."""
    timm = pytest.importorskip("timm")
    ref = timm.models.swin_transformer.SwinTransformer(
        img_size=224, embed_dim=32, depths=(2, 2, 2, 2), num_heads=(1, 2, 4, 8),
        window_size=7, always_partition=True, strict_img_size=False, num_classes=10,
        drop_path_rate=0.0).eval()
    ours = build_swin("swin_t", "fixed", embed_dim=32, depths=(2, 2, 2, 2),
                      num_heads=(1, 2, 4, 8), drop_path_rate=0.0).eval()
    report = load_pretrained(ours, ref.state_dict())
    assert report.layout == "timm" and not report.missing_pretrained
    x = torch.randn(2, 3, 224, 224)
    feats = ref.patch_embed(x)
    outs = ours(x)
    for i, layer in enumerate(ref.layers):
        feats = layer(feats)  # NHWC
        expected = ours.__getattr__(f"norm{i}")(feats).permute(0, 3, 1, 2)
        assert (outs[f"res{i + 2}"] - expected).abs().max() < 1e-4, i


# ------------------------------------------------- what the engine sees: model_protocol
def test_engine_finds_the_swin_and_its_blocks_through_the_protocols(tiny_swin):
    from mona_scale.engine.model_protocol import find_backbone, find_shardable

    from torch import nn

    swin = tiny_swin("mona")
    model = nn.ModuleDict({"stem": nn.Conv2d(3, 3, 1), "backbone": nn.ModuleDict({"net": swin}),
                           "head": nn.Linear(4, 2)})
    assert find_shardable(model) == [swin] and find_backbone(model) is swin
    assert find_shardable(nn.Linear(2, 2)) == [] and find_backbone(nn.Linear(2, 2)) is None
    names = {id(m): n for n, m in swin.named_modules()}
    # TINY has two blocks in each of four stages, in forward order
    assert [names[id(u)] for u in swin.shard_units()] == [
        f"layers.{i}.blocks.{j}" for i in range(4) for j in range(2)]


def test_protocol_load_pretrained_loads_a_state_dict(tiny_swin):
    from mona_scale.engine.model_protocol import find_backbone

    source, target = tiny_swin("full"), tiny_swin("mona")
    state = {k: v for k, v in source.state_dict().items() if not k.startswith("norm")}
    report = find_backbone(target).load_pretrained({"model": state})
    assert report.layout == "microsoft" and report.missing_pretrained == []
    assert torch.equal(target.state_dict()["layers.2.blocks.1.attn.qkv.weight"],
                       state["layers.2.blocks.1.attn.qkv.weight"])


def test_build_model_sets_activation_checkpointing_on_the_backbone():
    from mona_scale.engine.config import load_config
    from mona_scale.engine.defaults import build_model
    from mona_scale.engine.model_protocol import find_backbone

    for enabled in (True, False):
        cfg = load_config("configs/quickstart/shapes_cls_mona.py",
                          [f"train.activation_checkpointing={enabled}"])
        swin = find_backbone(build_model(cfg))
        assert [stage.activation_checkpointing for stage in swin.layers] == [enabled] * 4
