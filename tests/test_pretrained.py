"""Round trips of every supported checkpoint layout, written by the test itself."""
import pickle

from mona_scale.backbones import load_pretrained
from mona_scale.backbones.pretrained import interpolate_position_table

import pytest
import torch
import torch.nn.functional as F


def microsoft_state(model) -> dict:
    """Microsoft's file content: backbone keys without norm0..3 and adapters, plus the
    buffers and classifier that a detection backbone ignores."""
    state = {k: v.clone() for k, v in model.state_dict().items()
             if not k.startswith(("norm0", "norm1", "norm2", "norm3")) and "my_module" not in k}
    state["layers.0.blocks.1.attn_mask"] = torch.zeros(64, 49, 49)
    state["layers.0.blocks.0.attn.relative_position_index"] = torch.zeros(49, 49).long()
    state["norm.weight"], state["norm.bias"] = torch.ones(256), torch.zeros(256)
    state["head.weight"], state["head.bias"] = torch.randn(10, 256), torch.zeros(10)
    return state


def assert_loaded(target, source_state, prefix=""):
    target_state = target.state_dict()
    compared = 0
    for key, value in source_state.items():
        key = key[len(prefix):]
        if key in target_state:
            assert torch.equal(target_state[key], value), key
            compared += 1
    return compared


def write(path, obj):
    torch.save(obj, path)
    return path


def test_microsoft_layout(tmp_path, tiny_swin):
    source, target = tiny_swin("full"), tiny_swin("mona")
    state = microsoft_state(source)
    report = load_pretrained(target, write(tmp_path / "ms.pth", {"model": state}))
    assert report.layout == "microsoft"
    assert report.missing_pretrained == []
    assert sorted(report.ignored) == sorted(
        ["layers.0.blocks.1.attn_mask", "layers.0.blocks.0.attn.relative_position_index",
         "norm.weight", "norm.bias", "head.weight", "head.bias"])
    assert report.unexpected == []
    assert assert_loaded(target, state) == len(report.loaded) > 100
    assert all("my_module" in k or k.startswith("norm") for k in report.missing)


def test_mmcv_layout_with_trained_mona_adapters(tmp_path, tiny_swin):
    source, target = tiny_swin("mona"), tiny_swin("mona")
    state = {"backbone." + k: v for k, v in source.state_dict().items()}
    state["neck.lateral_convs.0.conv.weight"] = torch.randn(4, 4)
    ckpt = write(tmp_path / "mona_coco.pth", {"meta": {"epoch": 3}, "state_dict": state})
    report = load_pretrained(target, ckpt)
    assert report.layout == "mmcv" and report.missing == []
    assert report.unexpected == ["neck.lateral_convs.0.conv.weight"]
    assert any(k.endswith("my_module_2.adapter_conv.conv3.weight") for k in report.loaded)
    assert assert_loaded(target, state, "backbone.") == len(source.state_dict())


@pytest.mark.parametrize("suffix", [".pth", ".pkl"])
def test_detectron2_layout(tmp_path, tiny_swin, suffix):
    source, target = tiny_swin("full"), tiny_swin("lora")
    state = {"backbone.bottom_up." + k: v for k, v in source.state_dict().items()}
    state["backbone.fpn_lateral2.weight"] = torch.randn(8, 32, 1, 1)
    path = tmp_path / f"model_final{suffix}"
    if suffix == ".pkl":
        with open(path, "wb") as f:
            pickle.dump({"model": {k: v.numpy() for k, v in state.items()},
                         "__author__": "test"}, f)
    else:
        write(path, {"model": state, "iteration": 10})
    report = load_pretrained(target, path)
    assert report.layout == "detectron2"
    assert report.unexpected == ["backbone.fpn_lateral2.weight"]
    assert all("lora_" in k for k in report.missing)
    assert assert_loaded(target, state, "backbone.bottom_up.") == len(source.state_dict())


def test_timm_layout_moves_downsample(tiny_swin):
    timm = pytest.importorskip("timm")
    ref = timm.models.swin_transformer.SwinTransformer(
        embed_dim=32, depths=(2, 2, 2, 2), num_heads=(1, 2, 4, 8), num_classes=5)
    target = tiny_swin("adapter")
    report = load_pretrained(target, ref.state_dict())
    assert report.layout == "timm" and report.missing_pretrained == []
    assert torch.equal(target.layers[0].downsample.reduction.weight,
                       ref.layers[1].downsample.reduction.weight)
    assert torch.equal(target.layers[3].blocks[1].mlp.fc2.bias,
                       ref.layers[3].blocks[1].mlp.fc2.bias)


def test_other_model_fails_naming_the_mismatch(tmp_path, tiny_swin):
    other = tiny_swin("full", embed_dim=48, num_heads=(1, 2, 4, 8))
    path = write(tmp_path / "swin_other.pth", {"model": microsoft_state(other)})
    message = r"patch_embed\.proj\.weight.*\(48, 3, 4, 4\).*\(32, 3, 4, 4\)"
    with pytest.raises(ValueError, match=message):
        load_pretrained(tiny_swin("mona"), path)


def test_nothing_matched_is_an_error(tmp_path, tiny_swin):
    path = write(tmp_path / "resnet.pth", {"state_dict": {"conv1.weight": torch.randn(2, 3)}})
    with pytest.raises(ValueError, match="no tensor matched.*conv1.weight"):
        load_pretrained(tiny_swin("mona"), path)
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        load_pretrained(tiny_swin("mona"), tmp_path / "missing.pth")


def test_window_size_change_interpolates(tiny_swin):
    source, target = tiny_swin("full"), tiny_swin("mona", window_size=12)
    state = microsoft_state(source)
    report = load_pretrained(target, {"model": state})
    key = "layers.2.blocks.1.attn.relative_position_bias_table"
    assert key in report.interpolated and len(report.interpolated) == 8
    table = target.state_dict()[key]
    assert table.shape == (23 * 23, 4)
    grid = state[key].T.reshape(1, 4, 13, 13)
    expected = F.interpolate(grid, size=(23, 23), mode="bicubic").reshape(4, -1).T
    assert torch.allclose(table, expected)
    constant = torch.full((169, 2), 0.7)
    assert torch.allclose(interpolate_position_table(constant, 23 * 23), torch.full((529, 2), 0.7))
    x = torch.randn(1, 3, 96, 96)
    assert torch.isfinite(target.eval()(x)["res5"]).all()


def test_save_microsoft_checkpoint_round_trip(tmp_path, tiny_swin):
    from mona_scale.backbones.pretrained import save_microsoft_checkpoint
    source, target = tiny_swin("mona"), tiny_swin("full")
    count = save_microsoft_checkpoint(source, tmp_path / "swin.pth")
    report = load_pretrained(target, tmp_path / "swin.pth")
    assert report.layout == "microsoft" and len(report.loaded) == count
    assert report.missing == ["norm0.weight", "norm0.bias", "norm1.weight", "norm1.bias",
                              "norm2.weight", "norm2.bias", "norm3.weight", "norm3.bias"]
    assert torch.equal(target.layers[1].blocks[0].attn.qkv.weight,
                       source.layers[1].blocks[0].attn.qkv.weight)


def test_weights_of_another_depth_are_refused_naming_the_blocks(tmp_path, tiny_swin):
    """Swin-T weights into Swin-S in miniature: stage 2 has 2 blocks in the file, 4 in the
    model; blocks 2-3 would stay random."""
    shallow, deep = tiny_swin("full"), tiny_swin("mona", depths=(2, 2, 4, 2))
    path = write(tmp_path / "shallow.pth", {"model": microsoft_state(shallow)})
    before = {k: v.clone() for k, v in deep.state_dict().items()}
    with pytest.raises(ValueError, match=r"layers\.2\.blocks\.2-3.*another Swin size"):
        load_pretrained(deep, path)
    assert all(torch.equal(before[k], v) for k, v in deep.state_dict().items())  # untouched
    deep_path = write(tmp_path / "deep.pth", {"model": microsoft_state(tiny_swin(
        "full", depths=(2, 2, 4, 2)))})
    with pytest.raises(ValueError, match=r"file's \['layers\.2\.blocks\.2-3'\] do not exist"):
        load_pretrained(tiny_swin("mona"), deep_path)  # the reverse drops trained blocks


def _pickle_that_runs(marker) -> bytes:
    class Payload:
        def __reduce__(self):
            import os
            return os.system, (f"touch {marker}",)

    return pickle.dumps({"model": {"patch_embed.proj.weight": Payload()}}, protocol=2)


@pytest.mark.parametrize("loader", ["load_pretrained", "init_checkpoint", "checkpointer"])
def test_malicious_pickle_is_refused_without_running(tmp_path, tiny_swin, loader):
    marker = tmp_path / "pwned"
    path = tmp_path / "model_final.pkl"
    path.write_bytes(_pickle_that_runs(marker))
    pickle.loads(_pickle_that_runs(tmp_path / "proof"))  # the payload does run when unpickled
    assert (tmp_path / "proof").exists()
    with pytest.raises(pickle.UnpicklingError, match=r"model_final\.pkl.*'posix\.system'.*conv"):
        if loader == "load_pretrained":
            load_pretrained(tiny_swin("mona"), path)
        elif loader == "init_checkpoint":
            from mona_scale.engine.defaults import load_init_checkpoint
            load_init_checkpoint(tiny_swin("mona"), str(path))
        else:
            from mona_scale.engine.checkpoint import WeightsOnlyCheckpointer
            WeightsOnlyCheckpointer(tiny_swin("mona")).load(str(path), checkpointables=[])
    assert not marker.exists()


def test_model_zoo_pickle_of_numpy_arrays_loads(tmp_path, tiny_swin):
    import collections

    import numpy as np
    source, target = tiny_swin("full"), tiny_swin("mona")
    state = collections.OrderedDict(
        ("backbone.bottom_up." + k, v.numpy()) for k, v in source.state_dict().items())
    path = tmp_path / "zoo.pkl"
    for protocol in (2, 4):
        with open(path, "wb") as f:
            pickle.dump({"model": state, "__author__": "zoo", "matching_heuristics": True,
                         "scale": np.float32(1.0), "raw": b"\x00\x01"}, f, protocol=protocol)
        report = load_pretrained(target, path)
        assert report.layout == "detectron2" and report.missing_pretrained == []
        assert assert_loaded(target, {k: torch.from_numpy(v) for k, v in state.items()},
                             "backbone.bottom_up.") == len(source.state_dict())
