"""``python -m mona_scale.data.check`` on data laid out as the owners ship it.

The end-to-end tests run the check in a subprocess with ``$DETECTRON2_DATASETS`` pointing
at tiny data sets written by ``tests/helpers/real_layouts.py`` (detectron2 registers its builtin
sets' paths at import), on the paper configs. Expected counts come from independent
readers (pycocotools, the VOC XML files, the split and ``.mat`` files, the raw PNGs), and
every planted problem must make the check exit non-zero with the problem's path.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

from mona_scale.data.check import (
    Problem,
    SplitData,
    check_labels,
    check_record_files,
    compare_splits,
    is_stream_config,
    main,
    model_num_classes,
    problem_table,
)
from mona_scale.engine.config import load_config

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from helpers import real_layouts  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
COCO = "configs/coco/cascade_mask_rcnn_swin_b_mona_3x.py"
VOC = "configs/voc/retinanet_swin_l_mona_1x.py"
ADE20K = "configs/ade20k/upernet_swin_l_mona_160k.py"
FLOWERS = "configs/classification/flowers102_swin_l_mona.py"
PETS = "configs/classification/oxford_pets_swin_l_mona.py"
VOC07 = "configs/classification/voc07_swin_l_mona.py"
VOC07_MULTI = "configs/classification/voc07_multilabel_swin_l_mona.py"


# ------------------------------------------------------------------------------ helpers
def run_check(root: Path, config: str, *extra: str) -> subprocess.CompletedProcess:
    """The check as a user runs it, on ``root`` as ``$DETECTRON2_DATASETS``."""
    env = dict(os.environ, DETECTRON2_DATASETS=str(root), OMP_NUM_THREADS="1")
    return subprocess.run(
        [sys.executable, "-m", "mona_scale.data.check", "--config-file", config,
         "--workers", "1", *extra],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=180)


def _table(text: str, first_header: str) -> list[list[str]]:
    """The rows of the pipe table whose first header cell is ``first_header``."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines)
                 if line.startswith("|") and line.strip("| ").split()[0] == first_header)
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows


def problems_of(result: subprocess.CompletedProcess) -> list[tuple[str, str, str]]:
    """(split, kind, path) of every row of the printed problem table."""
    if "problem(s)" not in result.stdout:
        return []
    tail = result.stdout[result.stdout.index("problem(s)"):]
    return [(r[0], r[1], r[2]) for r in _table(tail, "split")]


def class_rows(result: subprocess.CompletedProcess) -> dict[str, dict[str, int]]:
    """Per-class table: class name -> {column header: count}."""
    lines = result.stdout.splitlines()
    header_line = next(line for line in lines if line.startswith("|   id |"))
    headers = [c.strip() for c in header_line.strip().strip("|").split("|")]
    return {row[1]: {h: int(v) for h, v in zip(headers[2:], row[2:], strict=True)}
            for row in _table(result.stdout, "id")}


def assert_clean(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "No problems found." in result.stdout


def assert_found(result: subprocess.CompletedProcess, expected: list[tuple[str, str, str]]
                 ) -> None:
    """Exit status 1 and each expected (split, kind, path) among the reported problems."""
    found = problems_of(result)
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-3000:]
    for item in expected:
        assert item in found, f"{item} not in {found}"


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 3])


@pytest.fixture
def coco_root(tmp_path: Path) -> Path:
    real_layouts.write_coco(tmp_path)
    return tmp_path


# ------------------------------------------------------------------------------ COCO
@pytest.mark.slow
def test_coco_clean_counts_match_pycocotools(coco_root: Path):
    from pycocotools.coco import COCO as CocoApi

    result = run_check(coco_root, COCO)
    assert_clean(result)
    rows = class_rows(result)
    for split, column in (("train", "train"), ("val", "test")):
        api = CocoApi(str(coco_root / "coco" / "annotations" / f"instances_{split}2017.json"))
        for cat in api.loadCats(api.getCatIds()):
            images = len(api.getImgIds(catIds=[cat["id"]]))
            annotations = len(api.getAnnIds(catIds=[cat["id"]]))
            assert rows[cat["name"]][f"{column} images"] == images, (split, cat)
            assert rows[cat["name"]][f"{column} annotations"] == annotations, (split, cat)
    summary = {r[0]: r for r in _table(result.stdout, "split")}
    assert int(summary["train"][3]) == 3 and int(summary["test"][3]) == 2


@pytest.mark.slow
def test_coco_planted_problems(coco_root: Path):
    train, val = coco_root / "coco" / "train2017", coco_root / "coco" / "val2017"
    missing, broken = sorted(train.iterdir())[:2]
    missing.unlink()
    truncate(broken)
    json_file = coco_root / "coco" / "annotations" / "instances_val2017.json"
    data = json.loads(json_file.read_text())
    data["annotations"][0]["category_id"] = 999  # not among the categories
    json_file.write_text(json.dumps(data))
    bad_image = next(i["file_name"] for i in data["images"]
                     if i["id"] == data["annotations"][0]["image_id"])
    # a training image without annotations: skipped by the loader, counted, not an error
    train_json = coco_root / "coco" / "annotations" / "instances_train2017.json"
    train_data = json.loads(train_json.read_text())
    last = sorted(train.iterdir())[-1]
    (train / "000000999999.jpg").write_bytes(last.read_bytes())
    width, height = Image.open(last).size
    train_data["images"].append({"file_name": "000000999999.jpg", "id": 999999,
                                 "width": width, "height": height})
    train_json.write_text(json.dumps(train_data))
    result = run_check(coco_root, COCO, "--workers", "2")  # a process pool
    assert_found(result, [("train", "missing file", str(missing)),
                          ("train", "undecodable image", str(broken)),
                          ("test", "label out of range", str(val / bad_image))])
    assert "category_id 999" in result.stdout
    assert len(problems_of(result)) == 3
    summary = {r[0]: r for r in _table(result.stdout, "split")}
    assert summary["train"][3] == "3" and summary["train"][-1] == "1"  # 3 kept, 1 skipped


@pytest.mark.real_data
def test_coco_train_val_category_mismatch(coco_root: Path):
    json_file = coco_root / "coco" / "annotations" / "instances_val2017.json"
    data = json.loads(json_file.read_text())
    data["categories"][1]["name"] = "bike"  # id 2: "bicycle" in train and in detectron2
    json_file.write_text(json.dumps(data))
    result = run_check(coco_root, COCO)
    assert_found(result, [("test", "category mismatch", str(json_file))])


# ------------------------------------------------------------------------------- VOC
def _voc_objects(root: Path, year: int, split: str, drop_difficult: bool = False
                 ) -> tuple[list[str], Counter, Counter]:
    """(image ids, images per class, objects per class) read from the XML files; training
    sets leave difficult objects out (``drop_difficult``), as the detection config does."""
    base = root / f"VOC{year}"
    ids = (base / "ImageSets" / "Main" / f"{split}.txt").read_text().split()
    images, objects = Counter(), Counter()
    for image_id in ids:
        names = [o.findtext("name")
                 for o in ET.parse(base / "Annotations" / f"{image_id}.xml").iter("object")
                 if not (drop_difficult and o.findtext("difficult") == "1")]
        objects.update(names)
        images.update(set(names))
    return ids, images, objects


@pytest.mark.slow
def test_voc_planted_problems(tmp_path: Path):
    real_layouts.write_voc(tmp_path)
    test_ids = (tmp_path / "VOC2007" / "ImageSets" / "Main" / "test.txt").read_text().split()
    missing = tmp_path / "VOC2007" / "JPEGImages" / f"{test_ids[0]}.jpg"
    missing.unlink()
    train_ids = (tmp_path / "VOC2012" / "ImageSets" / "Main" / "trainval.txt").read_text()
    xml = tmp_path / "VOC2012" / "Annotations" / f"{train_ids.split()[0]}.xml"
    text = xml.read_text()
    name = ET.fromstring(text).find("object").findtext("name")
    xml.write_text(text.replace(f"<name>{name}</name>", "<name>unicorn</name>", 1))
    result = run_check(tmp_path, VOC, "model.num_classes=21")  # the data have 20
    assert_found(result, [("test", "missing file", str(missing)),
                          ("train", "label out of range", str(xml)),
                          ("test", "category mismatch", VOC)])
    assert "'unicorn'" in result.stdout
    assert "the model predicts 21 classes" in result.stdout


@pytest.mark.real_data
def test_voc_clean_counts_match_xml(tmp_path: Path):
    real_layouts.write_voc(tmp_path)
    result = run_check(tmp_path, VOC)
    assert_clean(result)
    rows = class_rows(result)
    _, images07, objects07 = _voc_objects(tmp_path, 2007, "trainval", drop_difficult=True)
    _, images12, objects12 = _voc_objects(tmp_path, 2012, "trainval", drop_difficult=True)
    _, test_images, test_objects = _voc_objects(tmp_path, 2007, "test")
    for name in real_layouts.VOC_CLASSES:
        assert rows[name]["train images"] == images07[name] + images12[name], name
        assert rows[name]["train annotations"] == objects07[name] + objects12[name], name
        assert rows[name]["test images"] == test_images[name], name
        assert rows[name]["test annotations"] == test_objects[name], name


@pytest.mark.real_data
@pytest.mark.parametrize("config", [VOC07, VOC07_MULTI])
def test_voc07_classification_clean(tmp_path: Path, config: str):
    real_layouts.write_voc(tmp_path)
    result = run_check(tmp_path, config)
    assert_clean(result)
    rows = class_rows(result)
    train_ids, train_images, _ = _voc_objects(tmp_path, 2007, "trainval")
    test_ids, test_images, _ = _voc_objects(tmp_path, 2007, "test")
    if config == VOC07_MULTI:  # per class: the images holding an object of it
        for name in real_layouts.VOC_CLASSES:
            assert rows[name]["train images"] == train_images[name], name
            assert rows[name]["test images"] == test_images[name], name
    else:  # one label per image
        assert sum(r["train images"] for r in rows.values()) == len(train_ids)
        assert sum(r["test images"] for r in rows.values()) == len(test_ids)


# ---------------------------------------------------------------------------- ADE20K
@pytest.mark.real_data
def test_ade20k_raw_labels_clean_and_planted(tmp_path: Path):
    real_layouts.write_ade20k(tmp_path)
    base = tmp_path / "ADEChallengeData2016"
    raw = Counter()  # raw value k (1..150) is class k - 1; 0 ("other") is ignored
    for png in sorted((base / "annotations" / "training").glob("*.png")):
        values, counts = np.unique(np.array(Image.open(png)), return_counts=True)
        raw.update(dict(zip(values.tolist(), counts.tolist(), strict=True)))
    result = run_check(tmp_path, ADE20K, "--splits", "train")
    assert_clean(result)
    rows = class_rows(result)
    from detectron2.data.datasets.builtin_meta import ADE20K_SEM_SEG_CATEGORIES
    for k, name in enumerate(ADE20K_SEM_SEG_CATEGORIES):
        assert rows[name.strip()]["train pixels"] == raw[k + 1], name

    image = sorted((base / "images" / "training").glob("*.jpg"))[0]
    image.unlink()  # its mask now has no image
    label = sorted((base / "annotations" / "validation").glob("*.png"))[0]
    array = np.array(Image.open(label))
    array[:2, :2] = 200  # raw 200: class 199 of 150
    Image.fromarray(array, mode="L").save(label)
    orphan = base / "annotations" / "training" / f"{image.stem}.png"
    result = run_check(tmp_path, ADE20K)
    assert_found(result, [("train", "missing file", str(orphan)),
                          ("test", "label out of range", str(label))])


# ----------------------------------------------------------------------- Flowers102
@pytest.mark.real_data
def test_flowers102_counts_and_bad_label(tmp_path: Path):
    from scipy.io import loadmat, savemat

    summary = real_layouts.write_flowers102(tmp_path)
    base = tmp_path / "flowers102"
    labels = loadmat(base / "imagelabels.mat")["labels"].ravel()
    setid = loadmat(base / "setid.mat")
    train_numbers = np.concatenate([setid["trnid"].ravel(), setid["valid"].ravel()])
    result = run_check(tmp_path, FLOWERS)
    assert_clean(result)
    rows = class_rows(result)
    expected = Counter((labels[train_numbers - 1] - 1).tolist())
    assert {int(k): v["train images"] for k, v in rows.items() if v["train images"]} == expected
    assert sum(v["train images"] for v in rows.values()) == summary["train"] + summary["val"]

    labels = labels.astype(np.int64)
    labels[0] = 103  # outside 1..102
    savemat(base / "imagelabels.mat", {"labels": labels[None, :]})
    result = run_check(tmp_path, FLOWERS)
    assert result.returncode == 1
    assert str(base / "imagelabels.mat") in {p[2] for p in problems_of(result)}


# ---------------------------------------------------------------------- Oxford Pets
@pytest.mark.real_data
def test_oxford_pets_counts_and_planted(tmp_path: Path):
    real_layouts.write_oxford_pets(tmp_path)
    annotations = tmp_path / "oxford_pets" / "annotations"
    lines = (annotations / "trainval.txt").read_text().splitlines()
    result = run_check(tmp_path, PETS)
    assert_clean(result)  # PNG, GIF, RGBA and EXIF-rotated data under .jpg names included
    rows = class_rows(result)
    expected = Counter(int(line.split()[1]) - 1 for line in lines)  # 1-based class ids
    assert {int(k): v["train images"] for k, v in rows.items() if v["train images"]} == expected

    fields = lines[0].split()
    lines[0] = " ".join([fields[0], "38"] + fields[2:])  # 37 classes
    (annotations / "trainval.txt").write_text("\n".join(lines) + "\n")
    test_lines = (annotations / "test.txt").read_text().splitlines()
    test_lines[1] = test_lines[1].split()[0]  # an image without its label
    (annotations / "test.txt").write_text("\n".join(test_lines) + "\n")
    result = run_check(tmp_path, PETS)
    assert_found(result, [("train", "label out of range", str(annotations / "trainval.txt")),
                          ("test", "empty label", str(annotations / "test.txt"))])


# ------------------------------------------------------------------- in-process parts
def test_stream_config_is_a_usage_error(capsys):
    stream = "configs/coco/cascade_mask_rcnn_swin_b_mona_3x_stream.py"
    assert is_stream_config(load_config(str(REPO / stream)))
    assert not is_stream_config(load_config(str(REPO / COCO)))
    assert main(["--config-file", str(REPO / stream)]) == 2
    assert "mona-shards verify" in capsys.readouterr().err


@pytest.mark.parametrize("config, expected", [(COCO, 80), (VOC, 20), (ADE20K, 150),
                                              (FLOWERS, 102), (PETS, 37), (VOC07, 20)])
def test_model_num_classes(config: str, expected: int):
    assert model_num_classes(load_config(str(REPO / config)).model) == expected


def test_classification_labels():
    records = [{"file_name": "ok.jpg", "label": 2},
               {"file_name": "big.jpg", "label": 3},
               {"file_name": "negative.jpg", "label": -1},
               {"file_name": "none.jpg", "label": None},
               {"file_name": "multi_ok.jpg", "label": [0.0, 1.0, 1.0]},
               {"file_name": "multi_empty.jpg", "label": [0.0, 0.0, 0.0]},
               {"file_name": "multi_short.jpg", "label": [1.0, 0.0]},
               {"file_name": "list_empty.jpg", "label": []}]
    data = SplitData("train", records, "classification", classes=["a", "b", "c"])
    found = {(p.path, p.kind) for p in check_labels(data)}
    assert found == {("big.jpg", "label out of range"), ("negative.jpg", "label out of range"),
                     ("none.jpg", "empty label"), ("multi_empty.jpg", "empty label"),
                     ("multi_short.jpg", "label out of range"),
                     ("list_empty.jpg", "empty label")}


def test_detection_category_ids():
    def record(name, category):
        return {"file_name": name, "height": 10, "width": 10, "annotations": [
            {"bbox": [1, 1, 4, 4], "bbox_mode": 1, "category_id": category, "iscrowd": 0}]}
    data = SplitData("test", [record("a.jpg", 0), record("b.jpg", 2), record("c.jpg", 5)],
                     "detection", classes=["x", "y", "z"])
    assert check_labels(data) == [Problem("test", "label out of range", "c.jpg",
                                          "annotation 0: category_id 5 outside [0, 3)")]


def test_compare_splits():
    train = SplitData("train", [], "detection", classes=["cat", "dog"],
                      classes_from_metadata=True, id_map={1: 0, 2: 1})
    same = SplitData("test", [], "detection", classes=["cat", "dog"],
                     classes_from_metadata=True, id_map={1: 0, 2: 1}, source="val.json")
    assert compare_splits(train, same) == []
    renamed = SplitData("test", [], "detection", classes=["cat", "cow"],
                        classes_from_metadata=True, id_map={1: 0, 3: 1}, source="val.json")
    found = compare_splits(train, renamed)
    assert [(p.split, p.kind, p.path) for p in found] == [
        ("train/test", "category mismatch", "val.json")] * 2
    assert "'dog'" in found[0].detail and "'cow'" in found[0].detail


def test_record_files(tmp_path: Path):
    good = tmp_path / "good.jpg"
    Image.fromarray(np.full((6, 8, 3), 90, np.uint8)).save(good)
    broken = tmp_path / "broken.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)).save(
        broken)
    truncate(broken)
    mask = tmp_path / "mask.png"
    values = np.zeros((6, 8), np.uint8)
    values[0, 0], values[1, 1] = 255, 7  # ignore is fine, 7 is not a class of 4
    Image.fromarray(values, mode="L").save(mask)

    assert check_record_files({"file_name": str(good), "width": 8, "height": 6}) == ([], None)
    kinds = {
        "missing": check_record_files({"file_name": str(tmp_path / "nope.jpg")}),
        "broken": check_record_files({"file_name": str(broken)}),
        "size": check_record_files({"file_name": str(good), "width": 6, "height": 8}),
        "mask": check_record_files({"file_name": str(good), "sem_seg_file_name": str(mask)},
                                   num_classes=4),
    }
    assert [p[:2] for p in kinds["missing"][0]] == [("missing file", str(tmp_path / "nope.jpg"))]
    assert [p[:2] for p in kinds["broken"][0]] == [("undecodable image", str(broken))]
    assert [p[:2] for p in kinds["size"][0]] == [("size mismatch", str(good))]
    problems, histogram = kinds["mask"]
    assert [p[:2] for p in problems] == [("label out of range", str(mask))]
    assert histogram[0] == 46 and histogram[7] == 1 and histogram[255] == 1


def test_problem_table_caps_rows_but_counts_all():
    problems = [Problem("train", "missing file", f"img{k}.jpg", "image does not exist")
                for k in range(7)] + [Problem("test", "empty label", "x.jpg")]
    text = problem_table(problems, max_rows=5)
    assert "img4.jpg" in text and "img5.jpg" not in text and "x.jpg" not in text
    assert "... and 3 more" in text
    assert "7 missing file (train), 1 empty label (test)" in text


def test_unreadable_sets_are_diagnosed_per_file(tmp_path: Path):
    from mona_scale.data.check.diagnose import load_problems

    from detectron2.data import MetadataCatalog

    voc = tmp_path / "VOC"
    (voc / "ImageSets" / "Main").mkdir(parents=True)
    (voc / "Annotations").mkdir()
    (voc / "ImageSets" / "Main" / "test.txt").write_text("ok\nmissing\nbroken\nbad\n")
    box = "<bndbox><xmin>1</xmin><ymin>1</ymin><xmax>5</xmax><ymax>{}</ymax></bndbox>"
    (voc / "Annotations" / "ok.xml").write_text(
        f"<annotation><object><name>cat</name>{box.format(5)}</object></annotation>")
    (voc / "Annotations" / "broken.xml").write_text("<annotation><object>")
    (voc / "Annotations" / "bad.xml").write_text(
        f"<annotation><object><name>unicorn</name>{box.format(5)}</object>"
        f"<object><name>dog</name>{box.format('five')}</object></annotation>")
    MetadataCatalog.get("check_test_voc").set(dirname=str(voc), split="test",
                                              thing_classes=["cat", "dog"])
    found = load_problems(ValueError("'unicorn' is not in list"), str(voc), ["check_test_voc"])
    xml = voc / "Annotations"
    assert [p[:2] for p in found] == [("missing file", str(xml / "missing.xml")),
                                      ("undecodable annotation", str(xml / "broken.xml")),
                                      ("label out of range", str(xml / "bad.xml")),
                                      ("invalid annotation", str(xml / "bad.xml"))]

    coco = tmp_path / "instances.json"
    coco.write_text(json.dumps({
        "categories": [{"id": 1, "name": "cat"}, {"id": 3, "name": "dog"}],
        "images": [{"id": 7, "file_name": "a.jpg"}],
        "annotations": [{"id": 1, "image_id": 7, "category_id": 2, "bbox": [0, 0, 1, 1]},
                        {"id": 2, "image_id": 8, "category_id": 1, "bbox": [0, 0, 1, 1]},
                        {"id": 3, "image_id": 7, "category_id": 3, "bbox": []}]}))
    MetadataCatalog.get("check_test_coco").set(json_file=str(coco), image_root="img",
                                               thing_classes=["cat", "cow"])
    found = load_problems(KeyError(2), str(coco), ["check_test_coco"])
    assert [p[:2] for p in found] == [("category mismatch", str(coco)),
                                      ("label out of range", os.path.join("img", "a.jpg")),
                                      ("invalid annotation", str(coco)),
                                      ("invalid annotation", os.path.join("img", "a.jpg"))]
    assert "annotation 1 in" in found[1][2] and "category_id 2" in found[1][2]

    labels = tmp_path / "labels.txt"
    labels.write_text("x.jpg 9\n")
    found = load_problems(ValueError(f"'{labels}' line 1: label 9 outside [0, 3)"), "src", [])
    assert [p[:2] for p in found] == [("label out of range", str(labels))]
    assert load_problems(RuntimeError("boom"), "src", [])[0][:2] == ("unreadable dataset", "src")
