"""The paper configs: they load, build the real models, and encode the recipes."""
from mona_scale.engine.config import load_config
from mona_scale.engine.model_protocol import find_backbone

import pytest
import torch
from detectron2.config import instantiate
from detectron2.modeling.roi_heads import CascadeROIHeads


def _trainable(module):
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def _lr_at(cfg, fraction):
    scheduler = instantiate(cfg.lr_multiplier)
    return scheduler(fraction)


def test_coco_cascade_recipe():
    cfg = load_config("configs/coco/cascade_mask_rcnn_swin_b_mona_3x.py")
    assert cfg.optimizer.lr == 1e-4 and cfg.optimizer.weight_decay == 0.05
    epoch = 117266 // 16
    assert cfg.train.max_iter == 36 * epoch
    assert _lr_at(cfg, 26.9 / 36) == pytest.approx(1.0)
    assert _lr_at(cfg, 27.1 / 36) == pytest.approx(0.1)
    assert _lr_at(cfg, 33.1 / 36) == pytest.approx(0.01)
    assert _lr_at(cfg, 0.0) == pytest.approx(0.001)  # linear warmup from 0.001
    with torch.device("meta"):
        model = instantiate(cfg.model)
    backbone = find_backbone(model)
    assert backbone.tuning_method == "mona" and backbone.blocks[-1].drop_path.rate == 0.3
    assert _trainable(backbone) == 3_667_456  # the authors' Swin-B Mona count
    assert isinstance(model.roi_heads, CascadeROIHeads)
    assert all(p.requires_grad for n, p in model.named_parameters()
               if not n.startswith("backbone.bottom_up."))
    predictor = model.roi_heads.box_predictor[0]
    assert predictor.box_reg_loss_type == "giou" and predictor.loss_weight["loss_box_reg"] == 10
    # the authors' mmdet target_stds per stage (x, y, w, h); detectron2's weights are 1 / std
    stds = [(0.1, 0.2), (0.05, 0.1), (0.033, 0.067)]
    assert [tuple(p.box2box_transform.weights) for p in model.roi_heads.box_predictor] == [
        pytest.approx((1 / xy, 1 / xy, 1 / wh, 1 / wh)) for xy, wh in stds]
    assert len(model.roi_heads.box_head[0].conv_norm_relus) == 4


def test_voc_retinanet_recipe_and_other_methods():
    cfg = load_config("configs/voc/retinanet_swin_l_mona_1x.py", ["tuning.method=lora"])
    epoch = 16551 // 2
    assert cfg.train.max_iter == 12 * epoch
    assert _lr_at(cfg, 8.9 / 12) == 1.0 and _lr_at(cfg, 9.1 / 12) == pytest.approx(0.1)
    with torch.device("meta"):
        model = instantiate(cfg.model)
    backbone = find_backbone(model)
    assert backbone.tuning_method == "lora" and backbone.output_shape().keys() == {
        "res3", "res4", "res5"}
    assert _trainable(backbone) == 4_620_288  # the authors' Swin-L LoRA count
    assert model.num_classes == 20


PAPER_CONFIGS = {  # config -> the backbone node's key
    "configs/coco/cascade_mask_rcnn_swin_b_mona_3x.py": "model.backbone.bottom_up",
    "configs/voc/retinanet_swin_l_mona_1x.py": "model.backbone.bottom_up",
    "configs/ade20k/upernet_swin_l_mona_160k.py": "model.backbone",
    "configs/classification/flowers102_swin_l_mona.py": "model.backbone",
    "configs/classification/oxford_pets_swin_l_mona.py": "model.backbone",
    "configs/classification/voc07_swin_l_mona.py": "model.backbone",
    "configs/classification/voc07_multilabel_swin_l_mona.py": "model.backbone",
}
SWIN_T_CHANNELS = {"res2": 96, "res3": 192, "res4": 384, "res5": 768}  # the Swin paper's C=96


@pytest.mark.slow
@pytest.mark.parametrize("path", sorted(PAPER_CONFIGS))
def test_backbone_size_is_one_override(path):
    """``<backbone>.name=swin_t`` alone gives a model whose necks and heads take Swin-T's
    channels (every paper config defaults to Swin-B or Swin-L): it runs a forward pass."""
    key = PAPER_CONFIGS[path]
    cfg = load_config(path, [f"{key}.name=swin_t", f"{key}.drop_path_rate=0.0"])
    model = instantiate(cfg.model).eval()
    backbone = find_backbone(model)
    assert {k: v.channels for k, v in backbone.output_shape().items()} == {
        k: c for k, c in SWIN_T_CHANNELS.items() if k in backbone.output_shape()}
    with torch.no_grad():
        outputs = model([{"image": torch.randint(0, 255, (3, 64, 96), dtype=torch.uint8)
                          .float(), "height": 64, "width": 96}])
    assert len(outputs) == 1


ALL_CONFIGS = sorted(str(p) for p in __import__("pathlib").Path("configs").rglob("*.py")
                     if "common" not in p.parts)


@pytest.mark.parametrize("path", ALL_CONFIGS)
def test_saved_config_is_plain_yaml(path, tmp_path):
    """``config.yaml`` of every shipped config reads back with ``yaml.safe_load`` (as the
    exporter and users' tools read it): no python object tags (a ``ShapeSpec`` written as
    a value instead of ``L(ShapeSpec)(...)`` made it unreadable), and it loads back into
    the same config with detectron2's ``LazyConfig.load``."""
    from mona_scale.engine.config import save_config

    import yaml
    from detectron2.config import LazyConfig
    from omegaconf import OmegaConf

    cfg = load_config(path)
    save_config(cfg, str(tmp_path / "config.yaml"))
    plain = yaml.safe_load((tmp_path / "config.yaml").read_text())
    assert plain["train"]["output_dir"] == cfg.train.output_dir
    assert sorted(plain) == sorted(cfg)
    loaded = LazyConfig.load(str(tmp_path / "config.yaml"))
    assert OmegaConf.to_container(loaded.train) == OmegaConf.to_container(cfg.train)


@pytest.mark.parametrize("path", ["configs/voc/retinanet_swin_l_mona_1x.py",
                                  "configs/quickstart/shapes_cascade_mona.py"])
def test_saved_config_builds_the_same_model(path, tmp_path):
    """The ``L(ShapeSpec)`` nodes ``config.yaml`` holds instantiate to the shapes the
    config's ``ShapeSpec`` values gave: the same parameters, name by name."""
    from mona_scale.engine.config import save_config

    from detectron2.config import LazyConfig

    cfg = load_config(path)
    save_config(cfg, str(tmp_path / "config.yaml"))
    with torch.device("meta"):
        shapes = [{n: p.shape for n, p in instantiate(c.model).named_parameters()}
                  for c in (cfg, LazyConfig.load(str(tmp_path / "config.yaml")))]
    assert shapes[0] == shapes[1]
