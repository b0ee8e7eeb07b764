"""FastCOCOEvaluator (faster-coco-eval's C++ COCOeval) gives pycocotools' AP numbers on a
small COCO-format set: polygons, a crowd region, three non-contiguous categories, objects
of every area range, boxes and masks, false positives and a missed object."""
import json
import math

from mona_scale.evaluation import FastCOCOEvaluator, coco_backend

import numpy as np
import pycocotools.mask as mask_util
import pytest
import torch
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets import register_coco_instances
from detectron2.evaluation import COCOEvaluator
from detectron2.structures import Boxes, Instances
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

CATEGORIES = [{"id": 1, "name": "circle"}, {"id": 3, "name": "square"},
              {"id": 7, "name": "triangle"}]
IMAGES = [{"id": 11, "width": 200, "height": 160, "file_name": "a.png"},
          {"id": 12, "width": 120, "height": 100, "file_name": "b.png"},
          {"id": 13, "width": 64, "height": 64, "file_name": "c.png"}]
# (image, category, polygon as x0, y0, x1, y1 box corners or a triangle)
OBJECTS = [
    (11, 3, [10, 10, 130, 10, 130, 115, 10, 115]),  # large square (> 96^2)
    (11, 1, [140, 20, 190, 20, 190, 70, 140, 70]),  # medium
    (11, 7, [150, 100, 190, 150, 150, 150]),  # medium triangle
    (11, 7, [20, 130, 35, 130, 35, 150]),  # small triangle, never predicted
    (12, 1, [5, 5, 45, 5, 45, 45, 5, 45]),  # medium
    (12, 3, [60, 60, 80, 60, 80, 80, 60, 80]),  # small
    (12, 3, [90, 10, 110, 10, 110, 30, 90, 30]),  # small
    (13, 7, [5, 5, 60, 5, 60, 60]),  # medium triangle
    (13, 1, [40, 40, 55, 40, 55, 55, 40, 55]),  # small
]
CROWD = (12, 1, (50, 0, 120, 50))  # image, category, box of a crowd region (RLE)


def polygon_mask(polygon, height, width):
    rle = mask_util.merge(mask_util.frPyObjects([polygon], height, width))
    return mask_util.decode(rle).astype(bool)


def ground_truth() -> dict:
    sizes = {im["id"]: (im["height"], im["width"]) for im in IMAGES}
    annotations = []
    for i, (image, category, polygon) in enumerate(OBJECTS):
        h, w = sizes[image]
        rle = mask_util.merge(mask_util.frPyObjects([polygon], h, w))
        annotations.append({
            "id": i + 1, "image_id": image, "category_id": category, "iscrowd": 0,
            "segmentation": [polygon], "area": float(mask_util.area(rle)),
            "bbox": [float(v) for v in mask_util.toBbox(rle)]})
    image, category, (x0, y0, x1, y1) = CROWD
    h, w = sizes[image]
    crowd = np.zeros((h, w), dtype=np.uint8, order="F")
    crowd[y0:y1, x0:x1] = 1
    rle = mask_util.encode(crowd)
    # uncompressed RLE (run lengths, column-major), as COCO stores crowd regions
    flat = crowd.flatten(order="F")
    changes = np.flatnonzero(np.diff(np.concatenate([[0], flat, [2]])) != 0)
    counts = np.diff(np.concatenate([[0], changes])).tolist()
    assert sum(counts) == h * w
    annotations.append({"id": len(annotations) + 1, "image_id": image, "category_id": category,
                        "iscrowd": 1, "segmentation": {"counts": counts, "size": [h, w]},
                        "area": float(mask_util.area(rle)), "bbox": [x0, y0, x1 - x0, y1 - y0]})
    return {"images": IMAGES, "categories": CATEGORIES, "annotations": annotations}


def predictions() -> dict[int, list[tuple[int, float, np.ndarray]]]:
    """Per image: (category id, score, mask) of each detection: shifted copies of the
    objects (some badly), wrong-class copies, false positives and one in the crowd."""
    rng = np.random.default_rng(0)
    sizes = {im["id"]: (im["height"], im["width"]) for im in IMAGES}
    preds = {im["id"]: [] for im in IMAGES}
    for i, (image, category, polygon) in enumerate(OBJECTS):
        if i == 3:
            continue  # a missed object
        mask = polygon_mask(polygon, *sizes[image])
        shift = int(rng.integers(0, 9))
        moved = np.roll(mask, (shift, shift // 2), axis=(0, 1))
        preds[image].append((category, float(rng.uniform(0.3, 1.0)), moved))
        if i % 3 == 0:  # a duplicate with another class
            other = CATEGORIES[(i + 1) % 3]["id"]
            preds[image].append((other, float(rng.uniform(0.1, 0.9)), mask))
    for image, (h, w) in sizes.items():  # false positives: random ellipses
        for _ in range(2):
            yy, xx = np.mgrid[:h, :w]
            cy, cx = rng.uniform(0, h), rng.uniform(0, w)
            ry, rx = rng.uniform(4, h / 3), rng.uniform(4, w / 3)
            mask = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
            category = CATEGORIES[int(rng.integers(0, 3))]["id"]
            preds[image].append((category, float(rng.uniform(0.0, 0.6)), mask))
    image, category, (x0, y0, x1, y1) = CROWD
    mask = np.zeros(sizes[image], dtype=bool)
    mask[y0 + 5:y1 - 5, x0 + 5:x1 - 20] = True  # inside the crowd: ignored, no FP
    preds[image].append((category, 0.95, mask))
    return preds


def box_of(mask: np.ndarray) -> list[float]:
    ys, xs = np.nonzero(mask)
    return [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("coco_eval")
    json_file = root / "instances.json"
    json_file.write_text(json.dumps(ground_truth()))
    name = f"mona_test_coco_eval_{id(root)}"
    register_coco_instances(name, {}, str(json_file), str(root))
    DatasetCatalog.get(name)  # sets the category id mapping in the metadata
    return name, str(json_file)


def run_evaluator(evaluator) -> dict:
    contiguous = MetadataCatalog.get(evaluator._metadata.name).thing_dataset_id_to_contiguous_id
    evaluator.reset()
    for image, dets in predictions().items():
        h, w = next((im["height"], im["width"]) for im in IMAGES if im["id"] == image)
        instances = Instances((h, w))
        instances.pred_boxes = Boxes(torch.tensor([box_of(m) for _, _, m in dets]))
        instances.scores = torch.tensor([s for _, s, _ in dets])
        instances.pred_classes = torch.tensor([contiguous[c] for c, _, _ in dets])
        instances.pred_masks = torch.from_numpy(np.stack([m for _, _, m in dets]))
        evaluator.process([{"image_id": image}], [{"instances": instances}])
    return evaluator.evaluate()


def pycocotools_stats(json_file: str) -> dict[str, np.ndarray]:
    """AP stats straight from pycocotools on hand-made COCO results."""
    gt = COCO(json_file)
    stats = {}
    for task in ("bbox", "segm"):
        results = []
        for image, dets in predictions().items():
            for category, score, mask in dets:
                rle = mask_util.encode(np.asfortranarray(mask.astype(np.uint8)))
                rle["counts"] = rle["counts"].decode()
                x0, y0, x1, y1 = box_of(mask)
                result = {"image_id": image, "category_id": category, "score": score,
                          "segmentation": rle}
                if task == "bbox":
                    result["bbox"] = [x0, y0, x1 - x0, y1 - y0]
                results.append(result)
        coco_eval = COCOeval(gt, gt.loadRes(results), task)
        coco_eval.evaluate()
        coco_eval.accumulate()
        coco_eval.summarize()
        stats[task] = coco_eval.stats
    return stats


def assert_same(a: float, b: float, what: str) -> None:
    assert (math.isnan(a) and math.isnan(b)) or abs(a - b) <= 1e-6, (what, a, b)


def test_auto_backend_is_faster_coco_eval():
    assert coco_backend() == "faster_coco_eval"
    assert coco_backend("pycocotools") == "pycocotools"
    with pytest.raises(ValueError, match="backend='cocoapi'"):
        coco_backend("cocoapi")


def test_fast_evaluator_equals_pycocotools(dataset, tmp_path):
    name, json_file = dataset
    fast = FastCOCOEvaluator(name, output_dir=str(tmp_path), distributed=False)
    assert fast.backend == "faster_coco_eval"
    results = run_evaluator(fast)
    reference = pycocotools_stats(json_file)
    keys = ["AP", "AP50", "AP75", "APs", "APm", "APl"]
    for task in ("bbox", "segm"):
        for i, key in enumerate(keys):
            expected = 100 * reference[task][i] if reference[task][i] >= 0 else float("nan")
            assert_same(results[task][key], expected, f"{task}/{key}")
        # not a degenerate fixture: partial AP, every area range evaluated
        assert 10 < results[task]["AP"] < 90
        assert all(not math.isnan(results[task][k]) for k in ("APs", "APm", "APl"))
    assert (tmp_path / "coco_instances_results.json").is_file()


@pytest.mark.parametrize("max_dets", [None, 2])
def test_fast_evaluator_equals_detectron2_official(dataset, max_dets):
    """Every number detectron2's evaluator reports (per-category AP too), also with a
    custom detections-per-image limit."""
    name, _ = dataset
    official = run_evaluator(COCOEvaluator(name, distributed=False, use_fast_impl=False,
                                           max_dets_per_image=max_dets))
    fast = run_evaluator(FastCOCOEvaluator(name, distributed=False, max_dets_per_image=max_dets))
    assert set(fast) == set(official) == {"bbox", "segm"}
    for task in official:
        assert set(fast[task]) == set(official[task])
        assert {"AP-circle", "AP-square", "AP-triangle"} <= set(fast[task])
        for key, value in official[task].items():
            assert_same(fast[task][key], value, f"{task}/{key}")


def test_pycocotools_backend_is_detectron2s_path(dataset):
    name, json_file = dataset
    results = run_evaluator(FastCOCOEvaluator(name, distributed=False, backend="pycocotools"))
    reference = pycocotools_stats(json_file)
    assert_same(results["segm"]["AP"], 100 * reference["segm"][0], "segm/AP")
