"""The real-layout fixture (tests/helpers/real_layouts.py) read by independent readers (pycocotools,
torchvision, scipy, PIL), so it is the owners' format and not our idea of it; then our
readers and the paper configs' dataset nodes on it give the same images, labels and boxes."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.real_layouts import (
    EXIF_ORIENTATION,
    PET_BREEDS,
    VOC_CLASSES,
    write_ade20k,
    write_real_datasets,
)
from PIL import Image, ImageOps

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    root = tmp_path_factory.mktemp("real")
    start = time.perf_counter()
    summary = write_real_datasets(root)
    return root, summary, time.perf_counter() - start


def _files(root: Path) -> dict[str, bytes]:
    # a MAT-file's 116-byte text header holds its creation time (as in the real files)
    return {str(p.relative_to(root)): p.read_bytes()[116 if p.suffix == ".mat" else 0:]
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_writer_is_deterministic_and_quick(real, tmp_path):
    root, summary, seconds = real
    assert seconds < 10  # about 0.3 s alone; generous for a loaded CI machine
    assert write_real_datasets(tmp_path) == summary
    assert _files(tmp_path) == _files(root)


# ----------------------------------------------------------------------------------- COCO
def test_coco_reads_with_pycocotools_and_detectron2(real):
    from detectron2.data.datasets import load_coco_json
    from pycocotools import mask as mask_util
    from pycocotools.coco import COCO
    root, summary, _ = real
    for split in ("train", "val"):
        json_file = root / "coco" / "annotations" / f"instances_{split}2017.json"
        coco = COCO(str(json_file))
        assert {"info", "licenses", "images", "annotations", "categories"} <= set(coco.dataset)
        assert len(coco.getCatIds()) == 80 and max(coco.getCatIds()) == 90  # sparse ids
        assert all(c["supercategory"] for c in coco.loadCats(coco.getCatIds()))
        assert {a["category_id"] for a in coco.loadAnns(coco.getAnnIds())} == {1, 3, 18}
        assert len(coco.getImgIds()) == summary["coco"][split]
        crowd = [a for a in coco.loadAnns(coco.getAnnIds()) if a["iscrowd"]]
        assert crowd and all(isinstance(a["segmentation"]["counts"], list) for a in crowd)
        modes = set()
        for image in coco.loadImgs(coco.getImgIds()):
            with Image.open(root / "coco" / f"{split}2017" / image["file_name"]) as pil:
                assert pil.format == "JPEG" and pil.size == (image["width"], image["height"])
                modes.add(pil.mode)
            for ann in coco.loadAnns(coco.getAnnIds(imgIds=image["id"])):
                mask = coco.annToMask(ann)
                assert mask.shape == (image["height"], image["width"])
                ys, xs = np.nonzero(mask)
                if ann["iscrowd"]:  # the RLE holds exactly its area and box
                    assert mask.sum() == ann["area"]
                    assert [xs.min(), ys.min(), xs.max() + 1 - xs.min(),
                            ys.max() + 1 - ys.min()] == pytest.approx(ann["bbox"])
                else:  # the rasterised polygon lies in its box and roughly fills its area
                    x, y, w, h = ann["bbox"]
                    assert xs.min() >= int(x) and xs.max() <= x + w
                    assert ys.min() >= int(y) and ys.max() <= y + h
                    assert mask.sum() == pytest.approx(ann["area"], rel=0.3)
        if split == "train":
            assert modes == {"RGB", "L"}  # one grayscale JPEG
        # detectron2's builtin loader: same images and boxes, contiguous ids 0..2
        records = load_coco_json(str(json_file), str(root / "coco" / f"{split}2017"),
                                 f"_t_real_coco_{split}")
        contiguous = {i: k for k, i in enumerate(sorted(coco.getCatIds()))}
        assert (contiguous[1], contiguous[3], contiguous[18]) == (0, 2, 16)
        assert sorted(r["image_id"] for r in records) == sorted(coco.getImgIds())
        for record in records:
            anns = coco.loadAnns(coco.getAnnIds(imgIds=record["image_id"]))
            assert [o["bbox"] for o in record["annotations"]] == [a["bbox"] for a in anns]
            assert [o["category_id"] for o in record["annotations"]] == [
                contiguous[a["category_id"]] for a in anns]
            for obj, ann in zip(record["annotations"], anns, strict=True):
                assert obj.get("iscrowd", 0) == ann["iscrowd"]
                if ann["iscrowd"]:  # detectron2 compresses the RLE; same mask
                    assert np.array_equal(mask_util.decode(obj["segmentation"]),
                                          coco.annToMask(ann))


def test_coco_detr_mapper_crops_polygons_and_drops_crowd(real):
    """The paper recipe's mapper (flip, resize or resize-crop-resize of polygon masks, which
    needs shapely) on every training image, both augmentation branches."""
    from detectron2.config import LazyConfig, instantiate
    from detectron2.data.datasets import load_coco_json
    root, _, _ = real
    cfg = LazyConfig.load(str(REPO / "configs" / "common" / "data" / "coco_detr.py"))
    mapper = instantiate(cfg.dataloader.train.mapper)
    records = load_coco_json(str(root / "coco" / "annotations" / "instances_train2017.json"),
                             str(root / "coco" / "train2017"), "_t_real_coco_mapper")
    kept, changed = 0, 0  # aspect ratio kept (multi-scale branch) or changed (crop branch)
    for seed in range(6):
        np.random.seed(seed)  # detectron2 augmentations draw from numpy's global generator
        for record in records:
            out = mapper(record)
            solid = sum(1 for o in record["annotations"] if not o.get("iscrowd", 0))
            instances = out["instances"]
            assert out["image"].shape[0] == 3 and len(instances) <= solid
            assert instances.has("gt_masks") and instances.gt_masks.polygons is not None
            h, w = out["image"].shape[1:]
            boxes = instances.gt_boxes.tensor
            assert (boxes[:, 0::2] <= w).all() and (boxes[:, 1::2] <= h).all()
            assert min(h, w) in range(480, 801, 32)  # both branches end with this resize
            same = abs(h / w - record["height"] / record["width"]) < 0.02
            kept, changed = kept + same, changed + (not same)
    assert kept and changed


# ------------------------------------------------------------------------------------ VOC
def _voc_objects(target: dict) -> list[dict]:
    objects = target["annotation"]["object"]
    return objects if isinstance(objects, list) else [objects]


def test_voc_reads_with_torchvision_and_detectron2(real):
    from detectron2.data.datasets.pascal_voc import CLASS_NAMES, load_voc_instances
    from torchvision.datasets import VOCDetection
    root, summary, _ = real
    assert tuple(CLASS_NAMES) == VOC_CLASSES
    devkit = root / "VOCdevkit"
    devkit.mkdir(exist_ok=True)
    for year in ("2007", "2012"):
        if not (devkit / f"VOC{year}").exists():
            (devkit / f"VOC{year}").symlink_to(root / f"VOC{year}")
    cases = [("2007", "trainval"), ("2007", "test"), ("2012", "trainval")]
    difficult_seen = 0
    for year, split in cases:
        tv = VOCDetection(str(root), year=year, image_set=split)
        assert len(tv) == summary["voc"][f"voc{year}"][split]
        records = load_voc_instances(str(root / f"VOC{year}"), split, CLASS_NAMES)
        assert [Path(r["file_name"]).name for r in records] == [Path(p).name for p in tv.images]
        main = root / f"VOC{year}" / "ImageSets" / "Main"
        per_class = {c: dict(line.split() for line in (main / f"{c}_{split}.txt").read_text()
                             .splitlines()) for c in VOC_CLASSES}
        classes_seen = set()
        for (image, target), record in zip(tv, records, strict=True):
            size = target["annotation"]["size"]
            assert image.size == (int(size["width"]), int(size["height"]))
            assert (record["width"], record["height"]) == image.size
            objects = _voc_objects(target)
            # detectron2 keeps difficult objects and shifts the 1-based minima by one pixel
            assert [o["category_id"] for o in record["annotations"]] == [
                VOC_CLASSES.index(o["name"]) for o in objects]
            assert [o["bbox"] for o in record["annotations"]] == [
                [float(o["bndbox"]["xmin"]) - 1, float(o["bndbox"]["ymin"]) - 1,
                 float(o["bndbox"]["xmax"]), float(o["bndbox"]["ymax"])] for o in objects]
            for o in objects:
                box = {k: int(v) for k, v in o["bndbox"].items()}
                assert 1 <= box["xmin"] < box["xmax"] <= image.size[0]
                assert 1 <= box["ymin"] < box["ymax"] <= image.size[1]
                assert o["pose"] and o["truncated"] in ("0", "1")
            difficult_seen += sum(o["difficult"] == "1" for o in objects)
            stem = Path(record["file_name"]).stem
            for c in VOC_CLASSES:  # per-class lists: 1 / -1 / 0 (difficult only)
                flags = [o["difficult"] == "1" for o in objects if o["name"] == c]
                assert int(per_class[c][stem]) == (-1 if not flags else 0 if all(flags) else 1)
            classes_seen |= {o["name"] for o in objects}
        if year == "2007":
            assert classes_seen == set(VOC_CLASSES)  # every class in trainval and in test
    assert difficult_seen > 0


def test_voc07_classification_labels(real):
    from mona_scale.data.cls_readers import voc_classification_dicts

    from detectron2.data import DatasetCatalog
    from detectron2.data.datasets import register_pascal_voc
    from torchvision.datasets import VOCDetection
    root, _, _ = real
    devkit = root / "VOCdevkit"
    devkit.mkdir(exist_ok=True)
    if not (devkit / "VOC2007").exists():
        (devkit / "VOC2007").symlink_to(root / "VOC2007")
    for split in ("trainval", "test"):
        name = f"_t_real_voc07_{split}"
        if name not in DatasetCatalog.list():
            register_pascal_voc(name, str(root / "VOC2007"), split, 2007)
        tv = VOCDetection(str(root), year="2007", image_set=split)
        single = voc_classification_dicts(name, multi_label=False)
        multi = voc_classification_dicts(name, multi_label=True)
        assert [Path(d["file_name"]).name for d in single] == [Path(p).name for p in tv.images]
        for (_, target), one, many in zip(tv, single, multi, strict=True):
            objects = _voc_objects(target)
            areas = [(int(o["bndbox"]["xmax"]) - int(o["bndbox"]["xmin"]) + 1)
                     * (int(o["bndbox"]["ymax"]) - int(o["bndbox"]["ymin"]) + 1)
                     for o in objects]
            assert one["label"] == VOC_CLASSES.index(objects[int(np.argmax(areas))]["name"])
            assert {i for i, v in enumerate(many["label"]) if v} == {
                VOC_CLASSES.index(o["name"]) for o in objects}


# --------------------------------------------------------------------------------- ADE20K
def test_ade20k_raw_labels_convert_in_memory_for_mapper_and_evaluator(real, tmp_path):
    from mona_scale.data.ade20k import ade20k_sem_seg_dicts, register_ade20k

    from detectron2.data import DatasetMapper
    from detectron2.data import detection_utils as utils
    from detectron2.evaluation import SemSegEvaluator
    root, summary, _ = real
    base = root / "ADEChallengeData2016"
    register_ade20k(str(base), {"_t_real_ade_val": "validation"})
    values = set()
    mapper = DatasetMapper(is_train=False, augmentations=[], image_format="RGB")
    for split in ("training", "validation"):
        records = ade20k_sem_seg_dicts(str(base), split)
        assert len(records) == summary["ade20k"][split]
        for record in records:
            stem = Path(record["file_name"]).stem
            raw = np.array(Image.open(base / "annotations" / split / f"{stem}.png"))
            assert raw.dtype == np.uint8
            values |= set(np.unique(raw).tolist())
            expected = np.where(raw == 0, 255, raw.astype(np.int64) - 1)
            assert np.array_equal(utils.read_image(record["sem_seg_file_name"]), expected)
            out = mapper(dict(record))
            assert torch.equal(out["sem_seg"], torch.as_tensor(expected))
            assert out["image"].shape[1:] == raw.shape
    assert {0, 1, 150} <= values and max(values) <= 150

    # the paper recipe's training mapper (resize, category-area crop, flip, colour)
    from detectron2.config import LazyConfig, instantiate
    cfg = LazyConfig.load(str(REPO / "configs" / "common" / "data" / "ade20k.py"))
    assert cfg.dataloader.train.aspect_ratio_grouping is False
    train_mapper = instantiate(cfg.dataloader.train.mapper)
    np.random.seed(0)
    for record in ade20k_sem_seg_dicts(str(base), "training"):
        out = train_mapper(dict(record))
        assert set(torch.unique(out["sem_seg"]).tolist()) <= set(range(150)) | {255}
        assert out["image"].shape[1:] == out["sem_seg"].shape and max(out["sem_seg"].shape) <= 512

    def miou(predicted) -> float:
        evaluator = SemSegEvaluator("_t_real_ade_val", distributed=False)
        evaluator.reset()
        for record in ade20k_sem_seg_dicts(str(base), "validation"):
            stem = Path(record["file_name"]).stem
            raw = np.array(Image.open(base / "annotations" / "validation" / f"{stem}.png"))
            label = torch.as_tensor(predicted(raw.astype(np.int64)))
            logits = torch.nn.functional.one_hot(label, 150).permute(2, 0, 1).float()
            evaluator.process([record], [{"sem_seg": logits}])
        return evaluator.evaluate()["sem_seg"]["mIoU"]

    assert miou(lambda raw: np.clip(raw - 1, 0, 149)) == pytest.approx(100.0)
    assert miou(lambda raw: np.clip(raw, 0, 149)) < 50  # unconverted labels score badly

    # detectron2's converted layout next to the raw one is used as is
    copy = tmp_path / "converted"
    write_ade20k(copy)
    converted = copy / "ADEChallengeData2016" / "annotations_detectron2" / "validation"
    converted.mkdir(parents=True)
    for png in (copy / "ADEChallengeData2016" / "annotations" / "validation").glob("*.png"):
        raw = np.array(Image.open(png))
        Image.fromarray(np.where(raw == 0, 255, raw - 1).astype(np.uint8)).save(
            converted / png.name)
    records = ade20k_sem_seg_dicts(str(copy / "ADEChallengeData2016"), "validation")
    assert [Path(r["sem_seg_file_name"]).parent for r in records] == [converted] * 2
    for record in records:
        assert np.array_equal(np.array(Image.open(record["sem_seg_file_name"])),
                              utils.read_image(record["sem_seg_file_name"]))


# ------------------------------------------------------------------------- classification
def _cls_config_datasets(config: str, root: Path, monkeypatch) -> tuple[list, list]:
    """The train and test dataset nodes of a classification data config, resolved with
    ``$DETECTRON2_DATASETS`` = root (the readers read it when called)."""
    from detectron2.config import LazyConfig, instantiate
    monkeypatch.setenv("DETECTRON2_DATASETS", str(root))
    cfg = LazyConfig.load(str(REPO / "configs" / "common" / "data" / config))
    assert cfg.dataloader.train.aspect_ratio_grouping is False
    return instantiate(cfg.dataloader.train.dataset), instantiate(cfg.dataloader.test.dataset)


def _decoded_like_ours(path: str) -> np.ndarray:
    """PIL's own decoding, EXIF orientation applied, as RGB (independent of detectron2)."""
    with Image.open(path) as image:
        return np.asarray(ImageOps.exif_transpose(image).convert("RGB"))


def _check_mapper_images(dicts: list[dict]) -> None:
    from mona_scale.data.classification import ClassificationMapper
    mapper = ClassificationMapper(is_train=False, augmentations=[])
    for record in dicts:
        out = mapper(record)
        image = out["image"].permute(1, 2, 0).numpy()
        assert np.array_equal(image, _decoded_like_ours(record["file_name"])), record
        assert out["label"] == record["label"]


def test_flowers102_matches_torchvision(real, monkeypatch):
    from scipy.io import loadmat
    from torchvision.datasets import Flowers102

    class Unverified(Flowers102):
        def _check_integrity(self):  # the fixture's .mat files have other md5 sums
            return True

    root, summary, _ = real
    labels = loadmat(root / "flowers102" / "imagelabels.mat")["labels"]
    setid = loadmat(root / "flowers102" / "setid.mat")
    assert labels.shape == (1, 12) and labels.min() == 1 and labels.max() == 102
    assert all(setid[k].shape == (1, 4) for k in ("trnid", "valid", "tstid"))
    if not (root / "flowers-102").exists():
        (root / "flowers-102").symlink_to(root / "flowers102")
    tv = {split: Unverified(str(root), split=split) for split in ("train", "val", "test")}
    train, test = _cls_config_datasets("flowers102.py", root, monkeypatch)
    for ours, theirs in ((train, [tv["train"], tv["val"]]), (test, [tv["test"]])):
        files = [str(p) for t in theirs for p in t._image_files]
        tv_labels = [int(v) for t in theirs for v in t._labels]  # torchvision: 0-based
        assert [os.path.realpath(d["file_name"]) for d in ours] == [
            os.path.realpath(f) for f in files]
        assert [d["label"] for d in ours] == tv_labels
    assert len(train) == summary["flowers102"]["train"] + summary["flowers102"]["val"]
    gray = Image.open(root / "flowers102" / "jpg" / "image_00003.jpg")
    rotated = Image.open(root / "flowers102" / "jpg" / "image_00006.jpg")
    assert gray.mode == "L" and rotated.getexif()[EXIF_ORIENTATION] == 6
    _check_mapper_images(train + test)


def test_oxford_pets_matches_torchvision(real, monkeypatch):
    from torchvision.datasets import OxfordIIITPet
    root, summary, _ = real
    pets = root / "oxford_pets"
    if not (root / "oxford-iiit-pet").exists():
        (root / "oxford-iiit-pet").symlink_to(pets)
    train, test = _cls_config_datasets("oxford_pets.py", root, monkeypatch)
    for ours, split in ((train, "trainval"), (test, "test")):
        tv = OxfordIIITPet(str(root), split=split)
        assert len(ours) == summary["oxford_pets"][split] == len(tv)
        assert [Path(d["file_name"]).name for d in ours] == [p.name for p in tv._images]
        assert [d["label"] for d in ours] == tv._labels  # both 0..36
        for record, (image, label) in zip(ours, tv, strict=True):
            assert PET_BREEDS[label] == Path(record["file_name"]).stem.rsplit("_", 1)[0]
            assert image.mode == "RGB"
    header = (pets / "annotations" / "list.txt").read_text().splitlines()
    assert header[0].startswith("#") and sum(line.startswith("#") for line in header) == 6
    quirks = summary["oxford_pets"]["quirks"]
    magic = {k: (pets / "images" / f"{v}.jpg").read_bytes()[:8] for k, v in quirks.items()}
    assert magic["png"].startswith(b"\x89PNG") and magic["rgba"].startswith(b"\x89PNG")
    assert magic["gif"].startswith(b"GIF8") and magic["exif"].startswith(b"\xff\xd8")
    assert Image.open(pets / "images" / f"{quirks['rgba']}.jpg").mode == "RGBA"
    assert Image.open(pets / "images" / f"{quirks['gray']}.jpg").mode == "L"
    rotated = Image.open(pets / "images" / f"{quirks['exif']}.jpg")
    assert rotated.getexif()[EXIF_ORIENTATION] == 6
    _check_mapper_images(train + test)
    exif = next(d for d in train if quirks["exif"] in d["file_name"])
    from mona_scale.data.classification import ClassificationMapper
    out = ClassificationMapper(is_train=False, augmentations=[])(exif)
    assert tuple(out["image"].shape[1:]) == rotated.size  # stored w x h shows as h x w
    from detectron2.config import LazyConfig, instantiate
    cfg = LazyConfig.load(str(REPO / "configs" / "common" / "data" / "oxford_pets.py"))
    train_mapper = instantiate(cfg.dataloader.train.mapper)  # the paper's 224 crops
    assert all(train_mapper(d)["image"].shape == (3, 224, 224) for d in train)


# --------------------------------------------------------------------------- paper configs
PAPER_CONFIGS = {
    "coco/cascade_mask_rcnn_swin_b_mona_3x.py": ("coco", "train", "val"),
    "voc/retinanet_swin_l_mona_1x.py": ("voc", None, None),
    "ade20k/upernet_swin_l_mona_160k.py": ("ade20k", "training", "validation"),
    "classification/flowers102_swin_l_mona.py": ("flowers102", None, "test"),
    "classification/oxford_pets_swin_l_mona.py": ("oxford_pets", "trainval", "test"),
    "classification/voc07_swin_l_mona.py": ("voc07", None, None),
    "classification/voc07_multilabel_swin_l_mona.py": ("voc07", None, None),
}

_RESOLVE = textwrap.dedent("""
    import json, sys
    from mona_scale.engine.config import load_config
    from detectron2.config import instantiate
    from detectron2.data import DatasetCatalog
    out = {}
    for path in sys.argv[1:]:
        cfg = load_config(path)
        train = cfg.dataloader.train
        records = instantiate(train.dataset), instantiate(cfg.dataloader.test.dataset)
        name = cfg.dataloader.evaluator.get("dataset_name", "")
        out[path] = {"train": len(records[0]), "test": len(records[1]),
                     "grouping": train.get("aspect_ratio_grouping", True),
                     "sizes": all("width" in r for r in records[0]),
                     "evaluator_set": name in DatasetCatalog.list()}
    print("RESULT" + json.dumps(out))
""")


@pytest.mark.slow
def test_paper_configs_resolve_their_datasets_on_the_real_layouts(real):
    """Every paper config's train and test sets under $DETECTRON2_DATASETS=<fixture>, in a
    fresh process (detectron2 registers its builtin sets with paths read at import)."""
    root, summary, _ = real
    env = dict(os.environ, DETECTRON2_DATASETS=str(root), OMP_NUM_THREADS="1")
    paths = [str(REPO / "configs" / c) for c in PAPER_CONFIGS]
    done = subprocess.run([sys.executable, "-c", _RESOLVE, *paths], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.split("RESULT", 1)[1])
    voc = summary["voc"]
    expected = {"coco": (summary["coco"]["train"], summary["coco"]["val"]),
                "voc": (voc["voc2007"]["trainval"] + voc["voc2012"]["trainval"],
                        voc["voc2007"]["test"]),
                "ade20k": (summary["ade20k"]["training"], summary["ade20k"]["validation"]),
                "flowers102": (summary["flowers102"]["train"] + summary["flowers102"]["val"],
                               summary["flowers102"]["test"]),
                "oxford_pets": (summary["oxford_pets"]["trainval"],
                                summary["oxford_pets"]["test"]),
                "voc07": (voc["voc2007"]["trainval"], voc["voc2007"]["test"])}
    for config, (kind, _, _) in PAPER_CONFIGS.items():
        got = result[str(REPO / "configs" / config)]
        assert (got["train"], got["test"]) == expected[kind], config
        assert got["sizes"] or got["grouping"] is False, config  # grouping needs sizes
        if kind in ("coco", "voc", "ade20k"):
            assert got["evaluator_set"], config


# ------------------------------------------------------------------------------- shards
@pytest.mark.parametrize("kind", ["flowers102", "ade20k"])
def test_shards_from_the_real_layouts(real, tmp_path, kind):
    """Shards written from the raw layouts hold what the file-based readers give."""
    from mona_scale.data.ade20k import ade20k_sem_seg_dicts
    from mona_scale.data.cls_readers import flowers102_dicts
    from mona_scale.data.shards import shard_dataset, shard_dicts, write_shards
    from mona_scale.data.shards.sources import ade20k_source, flowers102_source

    from detectron2.data import detection_utils as utils
    root, _, _ = real
    if kind == "flowers102":
        source = flowers102_source(str(root / "flowers102"), "trainval")
        expected = flowers102_dicts(str(root / "flowers102"), "trainval")
    else:
        source = ade20k_source(str(root / "ADEChallengeData2016"), "validation")
        expected = ade20k_sem_seg_dicts(str(root / "ADEChallengeData2016"), "validation")
    write_shards(source, str(tmp_path / kind), shard_size=3, progress=False)
    got = shard_dicts(shard_dataset(f"_t_real_{kind}_shards", str(tmp_path / kind)))
    assert len(got) == len(expected)
    for streamed, record in zip(got, expected, strict=True):
        if kind == "flowers102":
            assert streamed["label"] == record["label"]
        else:  # the stored mask is the converted one
            assert np.array_equal(utils.read_image(streamed["sem_seg_file_name"]),
                                  utils.read_image(record["sem_seg_file_name"]))
