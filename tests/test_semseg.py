"""Semantic segmentation data and evaluation: the synthetic ``shapes_sem`` set, the
ratio-range resize, and detectron2's SemSegEvaluator fed by our model and datasets."""
from __future__ import annotations

from mona_scale.data import SEM_SEG_CLASSES, make_shapes_semantic, synthetic_dataset_dicts
from mona_scale.data.seg_transforms import ResizeRatioRange
from mona_scale.modeling import EncoderDecoderSegmenter, FCNHead, UPerHead, feature_shapes

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from detectron2.data import (
    DatasetCatalog,
    DatasetMapper,
    MetadataCatalog,
    build_detection_test_loader,
)
from detectron2.data import transforms as T
from detectron2.evaluation import SemSegEvaluator, inference_on_dataset
from PIL import Image

# --------------------------------------------------------------------------- synthetic set


def test_shapes_sem_is_deterministic_and_labelled(tmp_path):
    a = make_shapes_semantic(str(tmp_path / "a"), "val", 4, seed=1)
    b = make_shapes_semantic(str(tmp_path / "b"), "val", 4, seed=1)
    for sub in ("images", "labels"):
        for i in range(4):
            name = f"{sub}/{i:06d}.png"
            assert open(f"{a}/{name}", "rb").read() == open(f"{b}/{name}", "rb").read()
    labels = np.stack([np.asarray(Image.open(f"{a}/labels/{i:06d}.png")) for i in range(4)])
    assert labels.shape == (4, 128, 128) and labels.dtype == np.uint8
    assert set(np.unique(labels)) <= {0, 1, 2, 3, 255}
    assert (labels == 0).mean() > 0.3 and (labels == 255).mean() < 0.15
    assert len(set(np.unique(labels)) & {1, 2, 3}) >= 2  # several shape classes appear
    # 255 separates classes: no two different valid labels touch horizontally
    left, right = labels[:, :, :-1], labels[:, :, 1:]
    valid = (left != 255) & (right != 255)
    assert not (valid & (left != right)).any()
    stamp = (tmp_path / "a/shapes_sem/val.done.json").stat().st_mtime_ns
    assert make_shapes_semantic(str(tmp_path / "a"), "val", 4, seed=1) == a and (
        tmp_path / "a/shapes_sem/val.done.json").stat().st_mtime_ns == stamp


def test_shapes_sem_registration(tmp_path):
    dicts = synthetic_dataset_dicts("shapes_sem_val", root=str(tmp_path), num_images=3)
    assert len(dicts) == 3 and {d["height"] for d in dicts} == {128}
    assert all(d["sem_seg_file_name"].endswith(f"labels/{i:06d}.png")
               for i, d in enumerate(dicts))
    meta = MetadataCatalog.get("shapes_sem_val")
    assert meta.stuff_classes == list(SEM_SEG_CLASSES) == ["background", "circle", "square",
                                                          "triangle"]
    assert meta.ignore_label == 255 and meta.evaluator_type == "sem_seg"


# --------------------------------------------------------------------------- resize
@pytest.mark.parametrize("hw, ratio, expected", [
    ((100, 300), 1.0, (512, 1536)),   # short side limits: 512 / 100
    ((300, 100), 1.0, (1536, 512)),   # portrait: the same rule (unlike ResizeScale)
    ((100, 300), 0.5, (256, 768)),
    ((100, 1000), 1.0, (205, 2048)),  # long side limits: 2048 / 1000
])
def test_resize_ratio_range_is_mmsegs_keep_ratio_rescale(hw, ratio, expected):
    aug = ResizeRatioRange((2048, 512), (ratio, ratio))
    transform = aug.get_transform(np.zeros((*hw, 3), np.uint8))
    assert (transform.new_h, transform.new_w) == expected


def test_resize_ratio_range_draws_ratios_in_range():
    aug = ResizeRatioRange((2048, 512), (0.5, 2.0))
    np.random.seed(0)
    sides = [aug.get_transform(np.zeros((100, 200, 3), np.uint8)).new_h for _ in range(200)]
    assert 256 <= min(sides) < 300 and 980 < max(sides) <= 1024


# --------------------------------------------------------------------------- evaluator
GT = [np.array([[0, 0, 1, 1], [2, 2, 255, 1]], np.uint8), np.array([[1, 1]], np.uint8)]
PRED = [np.array([[0, 1, 1, 1], [2, 0, 0, 1]]), np.array([[1, 2]])]


@pytest.fixture
def hand_built_dataset(tmp_path):
    """Two tiny label maps registered as ``hand_sem`` (classes a, b, c; 255 ignored)."""
    dicts = []
    for i, gt in enumerate(GT):
        Image.fromarray(gt).save(tmp_path / f"gt{i}.png")
        dicts.append({"file_name": f"img{i}.png", "sem_seg_file_name": str(tmp_path / f"gt{i}.png"),
                      "height": gt.shape[0], "width": gt.shape[1]})
    DatasetCatalog.register("hand_sem", lambda: dicts)
    MetadataCatalog.get("hand_sem").set(stuff_classes=["a", "b", "c"], ignore_label=255)
    yield dicts
    DatasetCatalog.remove("hand_sem")
    MetadataCatalog.remove("hand_sem")


def test_semseg_evaluator_on_hand_built_predictions(hand_built_dataset):
    evaluator = SemSegEvaluator("hand_sem", distributed=False)
    evaluator.reset()
    for record, pred in zip(hand_built_dataset, PRED, strict=True):
        logits = F.one_hot(torch.as_tensor(pred), 3).permute(2, 0, 1).float()
        evaluator.process([record], [{"sem_seg": logits}])
    result = evaluator.evaluate()["sem_seg"]
    # 9 labelled pixels (the 255 one is ignored whatever is predicted there):
    # class a: tp 1, gt 2, pred 2 -> IoU 1/3; b: tp 4, gt 5, pred 5 -> 4/6; c: tp 1, gt 2,
    # pred 2 -> 1/3
    iou = np.array([1 / 3, 4 / 6, 1 / 3])
    assert result["mIoU"] == pytest.approx(100 * iou.mean())
    assert result["IoU-b"] == pytest.approx(100 * 4 / 6)
    assert result["pACC"] == pytest.approx(100 * 6 / 9)
    assert result["mACC"] == pytest.approx(100 * np.mean([1 / 2, 4 / 5, 1 / 2]))
    assert result["fwIoU"] == pytest.approx(100 * (iou @ np.array([2, 5, 2]) / 9))


def test_model_predictions_reach_the_evaluator_at_the_original_size(tmp_path, tiny_swin):
    """The test mapper shrinks 128-pixel images to 64; the model must answer at 128."""
    synthetic_dataset_dicts("shapes_sem_val", root=str(tmp_path), num_images=2)
    shapes = feature_shapes([32, 64, 128, 256])
    model = EncoderDecoderSegmenter(tiny_swin("fixed"), UPerHead(shapes, 4, channels=8, norm="BN"),
                                    FCNHead(shapes, 4, channels=8, norm="BN")).eval()
    loader = build_detection_test_loader(
        dataset=DatasetCatalog.get("shapes_sem_val"), num_workers=0,
        mapper=DatasetMapper(is_train=False, augmentations=[T.ResizeShortestEdge(64, 512)],
                             image_format="RGB"))
    evaluator = SemSegEvaluator("shapes_sem_val", distributed=False)
    results = inference_on_dataset(model, loader, evaluator)["sem_seg"]
    assert {"mIoU", "fwIoU", "mACC", "pACC", "IoU-circle"} <= set(results)
    assert 0.0 <= results["pACC"] <= 100.0
    assert evaluator._conf_matrix.sum() == 2 * 128 * 128  # every pixel of both label maps
