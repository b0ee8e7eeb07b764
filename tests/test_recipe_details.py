"""The smaller recipe details of the authors' code, each checked on a tiny object against a
hand computation or an independent implementation: RetinaNet's P7 without a ReLU, the focal
loss normalised by this batch's positives, VOC's difficult objects left out of training,
mmseg 0.11's loss mean and crop padding, and mmcls' OpenCV resizing, centre crop and head
initialisation."""
from __future__ import annotations

import math
import xml.etree.ElementTree as ET

from mona_scale.data.cls_transforms import CenterCrop, RandomResizedCrop, ResizeShortSide
from mona_scale.data.cv2_resize import Cv2ResizeShortestEdge
from mona_scale.data.seg_transforms import ResizeRatioRange
from mona_scale.data.voc_difficult import drop_difficult, voc_dicts_without_difficult
from mona_scale.modeling import (
    EncoderDecoderSegmenter,
    FCNHead,
    ImageClassifier,
    UPerHead,
    feature_shapes,
)
from mona_scale.modeling.fpn_blocks import P6P7OnInput
from mona_scale.modeling.retinanet_normalizer import RetinaNetWithNormalizer

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data import transforms as T
from detectron2.data.datasets import register_pascal_voc
from detectron2.layers import ShapeSpec
from detectron2.modeling.anchor_generator import DefaultAnchorGenerator
from detectron2.modeling.backbone.fpn import FPN
from detectron2.modeling.box_regression import Box2BoxTransform
from detectron2.modeling.matcher import Matcher
from detectron2.modeling.meta_arch.retinanet import RetinaNet, RetinaNetHead
from detectron2.structures import Boxes
from detectron2.utils.events import EventStorage
from helpers.real_layouts import write_voc
from torch import nn
from torchvision.ops import sigmoid_focal_loss


# --------------------------------------------------------------------------- RetinaNet P7
def _conv3x3_stride2(x: np.ndarray, w: np.ndarray, b: float) -> np.ndarray:
    """One-channel 3x3 convolution, stride 2, zero padding 1, by explicit loops."""
    padded = np.pad(x, 1)
    out_h, out_w = (x.shape[0] + 1) // 2, (x.shape[1] + 1) // 2
    out = np.zeros((out_h, out_w))
    for i in range(out_h):
        for j in range(out_w):
            out[i, j] = (padded[2 * i:2 * i + 3, 2 * j:2 * j + 3] * w).sum() + b
    return out


def test_p7_is_computed_from_p6_without_relu():
    block = P6P7OnInput(1, 1)
    rng = np.random.default_rng(0)
    w6, w7 = rng.normal(size=(3, 3)), rng.normal(size=(3, 3))
    with torch.no_grad():
        block.p6.weight.copy_(torch.tensor(w6).view(1, 1, 3, 3))
        block.p6.bias.fill_(-0.5)  # P6 gets negative values, so a ReLU would matter
        block.p7.weight.copy_(torch.tensor(w7).view(1, 1, 3, 3))
        block.p7.bias.fill_(0.25)
    x = rng.normal(size=(8, 8))
    p6, p7 = block(torch.tensor(x, dtype=torch.float32).view(1, 1, 8, 8))
    hand_p6 = _conv3x3_stride2(x, w6, -0.5)
    assert (hand_p6 < 0).any()
    np.testing.assert_allclose(p6[0, 0].detach().numpy(), hand_p6, atol=1e-5)
    np.testing.assert_allclose(p7[0, 0].detach().numpy(),
                               _conv3x3_stride2(hand_p6, w7, 0.25), atol=1e-5)
    with_relu = _conv3x3_stride2(np.maximum(hand_p6, 0), w7, 0.25)  # detectron2's
    assert not np.allclose(p7[0, 0].detach().numpy(), with_relu, atol=1e-3)
    block.relu_before_p7 = True
    np.testing.assert_allclose(block(torch.tensor(x, dtype=torch.float32).view(
        1, 1, 8, 8))[1][0, 0].detach().numpy(), with_relu, atol=1e-5)


def test_fpn_with_the_block_gives_p6_p7_at_strides_64_128(tiny_swin):
    fpn = FPN(bottom_up=tiny_swin("fixed", out_features=["res3", "res4", "res5"]),
              in_features=["res3", "res4", "res5"], out_channels=16,
              top_block=P6P7OnInput(256, 16))
    shapes = fpn.output_shape()
    assert [shapes[f"p{i}"].stride for i in range(3, 8)] == [8, 16, 32, 64, 128]
    out = fpn(torch.zeros(1, 3, 128, 128))
    assert out["p6"].shape[-2:] == (2, 2) and out["p7"].shape[-2:] == (1, 1)


# --------------------------------------------------------------------------- focal normaliser
def _tiny_retinanet(cls, tiny_swin, **kwargs):
    backbone = FPN(bottom_up=tiny_swin("fixed", out_features=["res3", "res4", "res5"]),
                   in_features=["res3", "res4", "res5"], out_channels=8,
                   top_block=P6P7OnInput(256, 8))
    return cls(
        backbone=backbone,
        head=RetinaNetHead(input_shape=[ShapeSpec(channels=8)] * 5, num_classes=3,
                           conv_dims=[8], num_anchors=1),
        head_in_features=["p3", "p4", "p5", "p6", "p7"],
        anchor_generator=DefaultAnchorGenerator(sizes=[[32], [64], [128], [256], [512]],
                                                aspect_ratios=[1.0],
                                                strides=[8, 16, 32, 64, 128]),
        box2box_transform=Box2BoxTransform(weights=(1.0, 1.0, 1.0, 1.0)),
        anchor_matcher=Matcher([0.4, 0.5], [0, -1, 1], allow_low_quality_matches=True),
        num_classes=3, pixel_mean=[0.0, 0.0, 0.0], pixel_std=[1.0, 1.0, 1.0], **kwargs)


def _loss_inputs(num_pos: int, seed: int):
    """Two images, 6 anchors each; ``num_pos`` positives in all (labels 0..2), one ignored
    anchor (-1), the rest background (3)."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.full((2, 6), 3)
    labels.view(-1)[:num_pos] = torch.arange(num_pos) % 3
    labels[1, 5] = -1
    anchors = [Boxes(torch.tensor([[0.0, 0.0, 10.0, 10.0]] * 6))]
    logits = [torch.randn(2, 6, 3, generator=generator)]
    deltas = [torch.randn(2, 6, 4, generator=generator)]
    gt_boxes = [torch.tensor([[1.0, 1.0, 9.0, 12.0]] * 6)] * 2
    return anchors, logits, labels, deltas, gt_boxes


def _hand_focal(logits, labels):
    """Sum of torchvision's sigmoid focal loss over the non-ignored anchors."""
    valid = labels >= 0
    target = F.one_hot(labels[valid], num_classes=4)[:, :3].float()
    return sigmoid_focal_loss(logits[0][valid], target, alpha=0.25, gamma=2.0,
                              reduction="sum")


def test_focal_loss_is_divided_by_this_batchs_positives(tiny_swin):
    model = _tiny_retinanet(RetinaNetWithNormalizer, tiny_swin, loss_normalizer_momentum=0.0)
    with EventStorage():
        for step, num_pos in enumerate([4, 1, 7]):
            anchors, logits, labels, deltas, gt_boxes = _loss_inputs(num_pos, step)
            losses = model.losses(anchors, logits, list(labels), deltas, gt_boxes)
            expected = _hand_focal(logits, labels) / num_pos
            assert torch.allclose(losses["loss_cls"], expected, rtol=1e-5), step
        anchors, logits, labels, deltas, gt_boxes = _loss_inputs(0, 9)  # no positive: 1
        losses = model.losses(anchors, logits, list(labels), deltas, gt_boxes)
        assert torch.allclose(losses["loss_cls"], _hand_focal(logits, labels), rtol=1e-5)


def test_default_momentum_is_detectron2s_running_average(tiny_swin):
    ours = _tiny_retinanet(RetinaNetWithNormalizer, tiny_swin)
    theirs = _tiny_retinanet(RetinaNet, tiny_swin)
    with EventStorage():
        for step, num_pos in enumerate([4, 1]):
            inputs = _loss_inputs(num_pos, step)
            a = ours.losses(inputs[0], inputs[1], list(inputs[2]), inputs[3], inputs[4])
            b = theirs.losses(inputs[0], inputs[1], list(inputs[2]), inputs[3], inputs[4])
            assert torch.equal(a["loss_cls"], b["loss_cls"])
    # by hand: 100 * 0.9 + 4 * 0.1 = 90.4, then 90.4 * 0.9 + 1 * 0.1 = 81.46
    assert ours.loss_normalizer == pytest.approx(81.46)
    with pytest.raises(ValueError, match="loss_normalizer_momentum"):
        _tiny_retinanet(RetinaNetWithNormalizer, tiny_swin, loss_normalizer_momentum=1.0)


def test_voc_config_uses_the_mmdet_details():
    from mona_scale.engine.config import load_config
    cfg = load_config("configs/voc/retinanet_swin_l_mona_1x.py")
    assert cfg.model._target_ is RetinaNetWithNormalizer
    assert cfg.model.loss_normalizer_momentum == 0.0 and cfg.model.smooth_l1_beta == 0.0
    assert cfg.model.backbone.top_block._target_ is P6P7OnInput
    assert cfg.model.backbone.top_block.relu_before_p7 is False
    assert cfg.dataloader.train.dataset._target_ is voc_dicts_without_difficult
    assert cfg.tuning.frozen_stages == 1


# --------------------------------------------------------------------------- VOC difficult
@pytest.fixture
def voc_sets(tmp_path):
    write_voc(tmp_path)
    names = []
    for year, split in [(2007, "trainval"), (2012, "trainval"), (2007, "test")]:
        name = f"recipe_voc_{year}_{split}_{tmp_path.name}"
        register_pascal_voc(name, str(tmp_path / f"VOC{year}"), split, year)
        names.append(name)
    yield tmp_path, names
    for name in names:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)


def _xml_objects(path):
    """(name, xmin - 1, ymin - 1, xmax, ymax, difficult) of every object, read here."""
    objects = []
    for obj in ET.parse(path).getroot().findall("object"):
        box = [float(obj.find("bndbox").find(k).text) for k in ("xmin", "ymin", "xmax", "ymax")]
        objects.append((obj.find("name").text, box[0] - 1, box[1] - 1, box[2], box[3],
                        obj.find("difficult").text == "1"))
    return objects


def test_difficult_objects_are_left_out_of_training_only(voc_sets):
    root, (train07, train12, test07) = voc_sets
    # one image whose every object is difficult: kept, with no annotation (mmdet)
    hard = root / "VOC2007" / "Annotations" / "000005.xml"
    hard.write_text(hard.read_text().replace("<difficult>0</difficult>",
                                             "<difficult>1</difficult>"))
    dicts = voc_dicts_without_difficult([train07, train12])
    assert len(dicts) == 6 + 3  # every trainval image
    classes = MetadataCatalog.get(train07).thing_classes
    for record in dicts:
        year = "VOC2012" if record["image_id"].startswith("20") else "VOC2007"
        expected = [o[:5] for o in _xml_objects(root / year / "Annotations"
                                                / f"{record['image_id']}.xml") if not o[5]]
        got = [(classes[a["category_id"]], *a["bbox"]) for a in record["annotations"]]
        assert got == expected, record["image_id"]
    counts = {r["image_id"]: len(r["annotations"]) for r in dicts}
    assert counts["000005"] == 0 and counts["000007"] == 4  # the fixture: 5th is difficult
    # the evaluation set keeps them (PascalVOCDetectionEvaluator reads the XML itself)
    test = DatasetCatalog.get(test07)
    assert all(len(r["annotations"]) == 5 for r in test)


def test_drop_difficult_names_the_xml_that_does_not_line_up(voc_sets):
    root, (train07, *_) = voc_sets
    record = dict(DatasetCatalog.get(train07)[0])
    record["annotations"] = record["annotations"][:2]
    with pytest.raises(ValueError, match=f"{record['image_id']}.xml: 5 <object>"):
        drop_difficult([record], str(root / "VOC2007"))


# --------------------------------------------------------------------------- mmseg loss, pad
def test_segmentation_loss_is_the_mean_over_every_pixel():
    model = EncoderDecoderSegmenter.__new__(EncoderDecoderSegmenter)
    nn.Module.__init__(model)
    model.ignore_value, model.loss_mean_over = 255, "all"
    logits = torch.tensor([[[[2.0, 0.0, 1.0]], [[0.0, 1.0, 3.0]]]])  # 2 classes, 3 pixels
    labels = torch.tensor([[[0, 1, 255]]])
    ce0 = -math.log(math.exp(2) / (math.exp(2) + 1))
    ce1 = -math.log(math.e / (1 + math.e))
    assert model._cross_entropy(logits, labels).item() == pytest.approx((ce0 + ce1 + 0) / 3)
    model.loss_mean_over = "labelled"
    assert model._cross_entropy(logits, labels).item() == pytest.approx((ce0 + ce1) / 2)


def test_training_batches_are_padded_to_the_crop_size(tiny_swin):
    shapes = feature_shapes([32, 64, 128, 256])
    # no norm layers, dropout or drop-path: training and inference compute the same
    model = EncoderDecoderSegmenter(tiny_swin("fixed"),
                                    UPerHead(shapes, 3, channels=8, norm=""),
                                    FCNHead(shapes, 3, channels=8, norm=""),
                                    train_pad_size=(512, 512)).train()
    for m in model.modules():
        if isinstance(m, (nn.Dropout, nn.Dropout2d)):
            m.p = 0.0
    seen = []
    model.backbone.register_forward_hook(lambda module, args, out: seen.append(args[0]))
    image = torch.randint(0, 256, (3, 300, 410)).float()  # a crop of a smaller image
    label = torch.randint(0, 3, (300, 410))
    losses = model([{"image": image, "sem_seg": label}])
    padded = seen[0]
    assert padded.shape == (1, 3, 512, 512)
    assert torch.equal(padded[:, :, 300:], torch.zeros(1, 3, 212, 512))  # 0 after normalising
    assert torch.equal(padded[:, :, :, 410:], torch.zeros(1, 3, 512, 102))
    # by hand: labels padded with 255, logits at 512x512, mean over all 512 x 512 pixels
    target = torch.full((1, 512, 512), 255)
    target[0, :300, :410] = label
    with torch.no_grad():
        model.eval()
        features = model.backbone(padded)
        logits = F.interpolate(model.decode_head(features), size=(512, 512), mode="bilinear",
                               align_corners=False)
    expected = F.cross_entropy(logits, target, ignore_index=255, reduction="sum") / 512 ** 2
    assert losses["loss_sem_seg"].item() == pytest.approx(expected.item(), rel=1e-4)
    model.eval()
    with torch.no_grad():  # no padding at inference
        out = model([{"image": image, "height": 300, "width": 410}])
    assert out[0]["sem_seg"].shape == (3, 300, 410) and seen[-1].shape[-2:] == (300, 410)


def test_ade20k_config_pads_to_its_crop_and_averages_like_mmseg():
    from mona_scale.engine.config import load_config

    from detectron2.config import instantiate
    cfg = load_config("configs/ade20k/upernet_swin_l_mona_160k.py",
                      ["dataloader.train.mapper.augmentations.1.crop_size=[320,320]"])
    with torch.device("meta"):
        model = instantiate(cfg.model)
    assert model.train_pad_size == (320, 320) and model.loss_mean_over == "all"


def test_resize_ratio_range_truncates_the_scale_and_resizes_with_opencv():
    image = np.random.default_rng(0).integers(0, 255, (100, 300, 3), dtype=np.uint8)
    transform = ResizeRatioRange((2048, 512), (0.7, 0.7)).get_transform(image)
    # mmseg: scale (int(2048 * 0.7), int(512 * 0.7)) = (1433, 358); factor min(1433 / 300,
    # 358 / 100) = 3.58 -> (358, 1074) (without the truncation: 3.584 -> (358, 1075))
    assert (transform.new_h, transform.new_w) == (358, 1074)
    expected = cv2.resize(image, (1074, 358), interpolation=cv2.INTER_LINEAR)
    assert np.array_equal(transform.apply_image(image), expected)
    label = (image[:, :, 0] % 7).astype(np.uint8)
    assert np.array_equal(transform.apply_segmentation(label),
                          cv2.resize(label, (1074, 358), interpolation=cv2.INTER_NEAREST))


# --------------------------------------------------------------------------- mmcls details
def test_random_resized_crop_resizes_its_crop_with_opencv_bilinear():
    image = np.random.default_rng(1).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    torch.manual_seed(3)
    transform = RandomResizedCrop(48).get_transform(image)
    box = transform.transforms[0]
    x0, y0, w, h = box.x0, box.y0, box.w, box.h
    out = transform.apply_image(image)
    expected = cv2.resize(image[y0:y0 + h, x0:x0 + w], (48, 48),
                          interpolation=cv2.INTER_LINEAR)
    assert np.array_equal(out, expected)
    pil = T.ResizeTransform(h, w, 48, 48).apply_image(image[y0:y0 + h, x0:x0 + w])
    assert not np.array_equal(out, pil)  # not detectron2's PIL resize


def test_test_resize_and_centre_crop_follow_mmcls():
    image = np.random.default_rng(2).integers(0, 255, (301, 451, 3), dtype=np.uint8)
    resized = T.AugmentationList([ResizeShortSide(256)])(aug := T.AugInput(image.copy()))
    del resized
    # mmcls: short side 256, long side int(256 * 451 / 301) = 383 (rounding would give 384)
    assert aug.image.shape == (256, 383, 3)
    assert np.array_equal(aug.image, cv2.resize(image, (383, 256),
                                                interpolation=cv2.INTER_LINEAR))
    same = np.zeros((256, 300, 3), np.uint8)
    assert isinstance(ResizeShortSide(256).get_transform(same), T.NoOpTransform)
    # centre crop offsets: round((257 - 224) / 2) = 16 (half to even), round(35 / 2) = 18
    big = np.random.default_rng(3).integers(0, 255, (257, 259, 3), dtype=np.uint8)
    CenterCrop(224)(aug := T.AugInput(big.copy()))
    assert np.array_equal(aug.image, big[16:240, 18:242])


def test_classifier_head_is_initialised_like_mmcls_linear_head(tiny_swin):
    torch.manual_seed(0)
    model = ImageClassifier(tiny_swin("fixed", out_features=["res5"]), 1000)
    weight = model.head.weight.detach()
    assert weight.std().item() == pytest.approx(0.01, rel=0.02)
    assert weight.abs().max().item() > 0.04  # normal, not truncated at 2 std
    assert torch.equal(model.head.bias.detach(), torch.zeros(1000))


@pytest.mark.parametrize("name", ["flowers102", "oxford_pets", "voc07", "voc07_multilabel"])
def test_classification_configs_use_the_authors_drop_path_and_evaluation(name):
    from mona_scale.engine.config import load_config
    cfg = load_config(f"configs/classification/{name}_swin_l_mona.py")
    assert cfg.model.backbone.drop_path_rate == 0.3
    epoch = {"flowers102": 2040, "oxford_pets": 3680}.get(name, 5011)
    assert cfg.train.eval_period == -(-epoch // 16)  # every epoch
    train_augs = cfg.dataloader.train.mapper.augmentations
    test_augs = cfg.dataloader.test.mapper.augmentations
    assert train_augs[0].interp == "bilinear" and test_augs[0]._target_ is ResizeShortSide
    assert test_augs[0].interp == "bilinear"


# --------------------------------------------------------------------------- detection resize
@pytest.mark.parametrize("hw", [(375, 500), (500, 333), (120, 1100)])
def test_shortest_edge_resize_has_detectron2s_sizes_and_opencv_pixels(hw):
    image = np.random.default_rng(4).integers(0, 255, (*hw, 3), dtype=np.uint8)
    transform = Cv2ResizeShortestEdge(600, 1000).get_transform(image)
    reference = T.ResizeShortestEdge(600, 1000).get_transform(image)
    size = (reference.new_h, reference.new_w)
    # mmcv's keep-ratio rescale into (1000, 600): factor min(1000 / long, 600 / short)
    factor = min(1000 / max(hw), 600 / min(hw))
    assert size == (int(hw[0] * factor + 0.5), int(hw[1] * factor + 0.5))
    assert (transform.new_h, transform.new_w) == size
    assert np.array_equal(transform.apply_image(image),
                          cv2.resize(image, size[::-1], interpolation=cv2.INTER_LINEAR))
    boxes = np.array([[10.0, 20.0, 110.0, 90.0]])
    assert np.allclose(transform.apply_box(boxes), reference.apply_box(boxes))


@pytest.mark.parametrize("config, nodes", [
    ("voc/retinanet_swin_l_mona_1x.py", ["train.mapper.augmentations.0",
                                          "test.mapper.augmentations.0"]),
    ("ade20k/upernet_swin_l_mona_160k.py", ["test.mapper.augmentations.0"]),
    ("coco/cascade_mask_rcnn_swin_b_mona_3x.py", [
        "train.mapper.augmentations.1.choices.0.0", "train.mapper.augmentations.1.choices.1.0",
        "train.mapper.augmentations.1.choices.1.2", "test.mapper.augmentations.0"]),
])
def test_detection_and_segmentation_configs_resize_with_opencv(config, nodes):
    from mona_scale.engine.config import load_config

    from omegaconf import OmegaConf
    cfg = load_config(f"configs/{config}")
    for node in nodes:
        assert OmegaConf.select(cfg.dataloader, node)._target_ is Cv2ResizeShortestEdge, node
    if config.startswith("coco"):
        assert cfg.dataloader.train.mapper.recompute_boxes is False  # mmdet clips boxes
