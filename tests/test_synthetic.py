"""Synthetic shapes datasets: the quickstarts' data pinned by digests, determinism, exact
masks read back by pycocotools and torchvision, the done-marker (caching, interrupted and
concurrent generation), detectron2 registration, shards made once."""
from __future__ import annotations

import hashlib
import json
import multiprocessing
from pathlib import Path

from mona_scale.data import (
    make_shapes_classification,
    make_shapes_instances,
    make_shapes_semantic,
    register_synthetic_datasets,
    synthetic,
)
from mona_scale.data.shards import synthetic_shards

import numpy as np
import pycocotools.mask as mask_util
import pytest
from PIL import Image
from pycocotools.coco import COCO
from torchvision.datasets import ImageFolder

# detectron2 after mona_scale, whose import applies the detectron2 v0.6 shims
# isort: off
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import BoxMode
# isort: on

# pycocotools' decode on numpy >= 2
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

SMALL = {"shapes_instances_train": 6, "shapes_instances_val": 4, "shapes_cls_train": 9,
         "shapes_cls_val": 6}

SHAPES = ["circle", "square", "triangle"]  # the quickstart's classes, written out

# The first 7 images of each quickstart val set (seed 1, default sizes) as written by the
# generator the README's figures were measured with (commit 6d80326): sha256 prefixes of the
# split files and of the decoded pixels (PNG compression may differ between Pillow builds).
QUICKSTART_VAL_DIGESTS = {"instances.json": "38010f833c3720ff", "instances": "732805a88ed6cfdd",
                          "cls.txt": "f8b35a6d94e6e338", "cls": "f06b8d23f475ef48",
                          "sem": "4752a76894fa3104"}


@pytest.fixture(scope="module")
def instances(tmp_path_factory):
    """30 generated images: (COCO dict, image directory)."""
    path = make_shapes_instances(str(tmp_path_factory.mktemp("shapes")), "train", 30)
    with open(path) as f:
        return json.load(f), Path(path).with_suffix("")


@pytest.fixture
def clean_catalogs():
    yield
    for name in SMALL:
        DatasetCatalog.pop(name, None)
        MetadataCatalog.pop(name, None)


def _files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def _masks_by_image(coco: dict) -> dict[int, list[np.ndarray]]:
    masks = {image["id"]: [] for image in coco["images"]}
    for ann in coco["annotations"]:
        masks[ann["image_id"]].append(mask_util.decode(ann["segmentation"]).astype(bool))
    return masks


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def _pixels(folder: Path) -> str:
    paths = sorted(folder.rglob("*.png"))
    return _sha(b"".join(np.asarray(Image.open(p)).tobytes() for p in paths))


def test_generated_data_is_the_quickstarts(tmp_path):
    coco = Path(make_shapes_instances(str(tmp_path), "val", 7, seed=1))
    cls = Path(make_shapes_classification(str(tmp_path), "val", 7, seed=1))
    sem = Path(make_shapes_semantic(str(tmp_path), "val", 7, seed=1))
    assert {"instances.json": _sha(coco.read_bytes()), "instances": _pixels(coco.with_suffix("")),
            "cls.txt": _sha(cls.with_suffix(".txt").read_bytes()), "cls": _pixels(cls),
            "sem": _pixels(sem)} == QUICKSTART_VAL_DIGESTS


def test_same_arguments_give_identical_files(tmp_path):
    a = make_shapes_instances(str(tmp_path / "a"), "val", 5, seed=3)
    b = make_shapes_instances(str(tmp_path / "b"), "val", 5, seed=3)
    assert Path(a).read_bytes() == Path(b).read_bytes()
    assert _files(Path(a).with_suffix("")) == _files(Path(b).with_suffix(""))
    c = make_shapes_instances(str(tmp_path / "c"), "val", 5, seed=4)
    assert _files(Path(c).with_suffix("")) != _files(Path(a).with_suffix(""))


def test_annotations_match_their_masks(instances):
    coco, _ = instances
    assert {c["id"]: c["name"] for c in coco["categories"]} == {1: "circle", 2: "square",
                                                                 3: "triangle"}
    assert {a["category_id"] for a in coco["annotations"]} == {1, 2, 3}
    for ann in coco["annotations"]:
        mask = mask_util.decode(ann["segmentation"])
        ys, xs = np.nonzero(mask)
        x0, y0 = xs.min(), ys.min()
        assert ann["bbox"] == [x0, y0, xs.max() - x0 + 1, ys.max() - y0 + 1]
        assert ann["area"] == mask.sum() >= 30
        assert ann["iscrowd"] == 0 and isinstance(ann["segmentation"]["counts"], str)


def test_each_image_has_one_to_four_disjoint_instances(instances):
    coco, _ = instances
    for masks in _masks_by_image(coco).values():
        assert 1 <= len(masks) <= 4
        assert (np.sum(masks, axis=0) <= 1).all()  # occluded pixels belong to one instance


def test_images_are_textured_not_flat(instances):
    coco, image_dir = instances
    masks = _masks_by_image(coco)
    for image in coco["images"][:10]:
        pixels = np.asarray(Image.open(image_dir / image["file_name"]), dtype=np.float32)
        assert pixels.shape == (128, 128, 3)
        background = pixels[~np.any(masks[image["id"]], axis=0)]
        assert background.std(axis=0).min() > 5
        assert np.abs(np.diff(pixels, axis=1)).mean() > 2  # pixel-level noise


def test_pycocotools_reads_the_instances(instances):
    coco, image_dir = instances
    api = COCO(str(image_dir) + ".json")
    assert sorted(api.getImgIds()) == list(range(1, 31))
    assert [c["name"] for c in api.loadCats(api.getCatIds())] == SHAPES
    masks = _masks_by_image(coco)
    for image_id in (1, 17, 30):
        anns = api.loadAnns(api.getAnnIds(imgIds=image_id))
        decoded = [api.annToMask(a).astype(bool) for a in anns]
        assert len(decoded) == len(masks[image_id])
        assert all(np.array_equal(a, b) for a, b in zip(decoded, masks[image_id], strict=True))


def test_second_call_is_cached_and_new_arguments_regenerate(tmp_path):
    path = Path(make_shapes_instances(str(tmp_path), "train", 4))
    image = path.with_suffix("") / "000000.png"
    marker = tmp_path / "shapes_instances/train.done.json"
    assert json.loads(marker.read_text())["num_images"] == 4
    # the marker is written last
    assert marker.stat().st_mtime_ns >= max(p.stat().st_mtime_ns
                                            for p in [path, *path.with_suffix("").iterdir()])
    stamps = path.stat().st_mtime_ns, image.stat().st_mtime_ns
    assert make_shapes_instances(str(tmp_path), "train", 4) == str(path)
    assert (path.stat().st_mtime_ns, image.stat().st_mtime_ns) == stamps
    make_shapes_instances(str(tmp_path), "train", 3)
    coco = json.loads(path.read_text())
    assert len(coco["images"]) == 3 and json.loads(marker.read_text())["num_images"] == 3
    assert sorted(p.name for p in path.with_suffix("").iterdir()) == [
        "000000.png", "000001.png", "000002.png"]
    assert not list(tmp_path.rglob("*.tmp.*"))  # no temporary files left


def test_interrupted_generation_is_redone(tmp_path, monkeypatch):
    reference = Path(make_shapes_semantic(str(tmp_path / "ref"), "val", 5))
    calls = []

    def dies_on_the_third(instances):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt  # e.g. the job was killed
        return real(instances)

    real = synthetic._semantic_label
    monkeypatch.setattr(synthetic, "_semantic_label", dies_on_the_third)
    with pytest.raises(KeyboardInterrupt):
        make_shapes_semantic(str(tmp_path / "a"), "val", 5)
    assert not (tmp_path / "a/shapes_sem/val.done.json").exists()
    monkeypatch.undo()
    split = Path(make_shapes_semantic(str(tmp_path / "a"), "val", 5))
    for sub in ("images", "labels"):
        assert _files(split / sub) == _files(reference / sub)


def test_classification_is_an_image_folder(tmp_path):
    split_dir = Path(make_shapes_classification(str(tmp_path), "train", 12))
    assert split_dir == tmp_path / "shapes_cls" / "train"
    folder = ImageFolder(str(split_dir))
    assert folder.classes == SHAPES
    assert sorted((Path(p).name, label) for p, label in folder.samples) == sorted(
        (f"{i:06d}.png", i % 3) for i in range(12))
    assert all(Image.open(p).size == (64, 64) for p, _ in folder.samples)
    listed = (tmp_path / "shapes_cls" / "train.txt").read_text().splitlines()  # the split file
    assert sorted(listed) == sorted(f"train/{SHAPES[i % 3]}/{i:06d}.png {i % 3}"
                                    for i in range(12))
    make_shapes_classification(str(tmp_path), "train", 7)  # fewer: the others are removed
    assert len(ImageFolder(str(split_dir)).samples) == 7


def _generate_classification(root: str) -> None:
    make_shapes_classification(root, "train", 40)


def test_concurrent_generators_write_one_split(tmp_path):
    """Two processes (as two ranks) generate the same split at once, with no lock."""
    reference = Path(make_shapes_classification(str(tmp_path / "ref"), "train", 40))
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_generate_classification, args=(str(tmp_path / "a"),))
               for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert [w.exitcode for w in workers] == [0, 0]
    split = tmp_path / "a/shapes_cls/train"
    for name in SHAPES:
        assert _files(split / name) == _files(reference / name)
    assert (tmp_path / "a/shapes_cls/train.done.json").is_file()
    assert not list(tmp_path.rglob("*.tmp.*"))


def test_registration_is_lazy_and_loads_coco_dicts(tmp_path, clean_catalogs):
    names = register_synthetic_datasets(root=str(tmp_path), sizes=SMALL)
    assert names == [*SMALL, "shapes_sem_train", "shapes_sem_val"]
    assert not (tmp_path / "shapes_instances").exists()  # nothing generated yet
    dicts = DatasetCatalog.get("shapes_instances_train")
    assert len(dicts) == 6
    for ann in (a for d in dicts for a in d["annotations"]):
        assert ann["bbox_mode"] == BoxMode.XYWH_ABS
        assert set(ann["segmentation"]) == {"size", "counts"}
    meta = MetadataCatalog.get("shapes_instances_train")
    assert meta.thing_classes == ["circle", "square", "triangle"]
    assert meta.evaluator_type == "coco" and Path(meta.json_file).is_file()


def test_classification_registration(tmp_path, clean_catalogs):
    register_synthetic_datasets(root=str(tmp_path), sizes=SMALL)
    dicts = DatasetCatalog.get("shapes_cls_val")
    assert len(dicts) == 6 and {d["label"] for d in dicts} == {0, 1, 2}
    assert all(Path(d["file_name"]).is_file() and d["height"] == 64 for d in dicts)
    meta = MetadataCatalog.get("shapes_cls_val")
    assert meta.classes == SHAPES and meta.evaluator_type == "classification"


def test_reregistering_updates_root_and_size(tmp_path, clean_catalogs):
    register_synthetic_datasets(root=str(tmp_path / "a"), sizes=SMALL)
    register_synthetic_datasets(root=str(tmp_path / "b"),
                                sizes={**SMALL, "shapes_instances_val": 2})
    assert len(DatasetCatalog.get("shapes_instances_val")) == 2
    assert MetadataCatalog.get("shapes_instances_val").image_root.startswith(
        str(tmp_path / "b"))
    with pytest.raises(KeyError):
        register_synthetic_datasets(root=str(tmp_path), sizes={"coco_2017_train": 1})


def test_default_root_comes_from_the_environment(tmp_path, monkeypatch, clean_catalogs):
    monkeypatch.setenv("MONA_DATASETS", str(tmp_path / "env"))
    register_synthetic_datasets(sizes=SMALL)
    assert MetadataCatalog.get("shapes_cls_train").image_root == str(
        tmp_path / "env" / "shapes_cls" / "train")


def test_synthetic_shards_are_written_once(tmp_path):
    manifest = Path(synthetic_shards("shapes_cls_val", str(tmp_path), 5, shard_size=2))
    assert manifest == tmp_path / "shards/shapes_cls_val-5-2/manifest.json"
    written = json.loads(manifest.read_text())
    assert written["complete"] and written["num_samples"] == 5 and len(written["shards"]) == 3
    stamp = manifest.stat().st_mtime_ns
    assert synthetic_shards("shapes_cls_val", str(tmp_path), 5, shard_size=2) == str(manifest)
    assert manifest.stat().st_mtime_ns == stamp  # complete and the same arguments: untouched
