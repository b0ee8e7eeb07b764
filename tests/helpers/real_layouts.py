"""Tiny data sets in exactly the layouts their owners distribute, for tests.

Every writer takes a root that acts as ``$DETECTRON2_DATASETS`` and writes a few small
images (64..128 px) with the file names, folder structure and annotation formats of the
downloaded archives, including the quirks real users meet:

* COCO 2017 (``coco/``): ``info``/``licenses`` keys, all 80 categories with their sparse
  ids (1..90) and supercategories (objects of ids 1, 3 and 18), polygon segmentations, an
  ``iscrowd=1`` object whose segmentation is an uncompressed (list ``counts``) column-major
  RLE as in the real crowd annotations, and a grayscale JPEG.
* Pascal VOC (``VOC2007/``, ``VOC2012/`` as in VOCdevkit): the real XML schema (``<size>``,
  ``<pose>``, ``<truncated>``, ``<difficult>``, 1-based pixel boxes), ``ImageSets/Main``
  ``{train,val,trainval,test}.txt`` and per-class ``<class>_<split>.txt`` (1 / -1 / 0 for
  difficult-only). VOC2007 has trainval and test, VOC2012 trainval only.
* ADE20K (``ADEChallengeData2016/``): ``images/{training,validation}/ADE_*.jpg`` and the raw
  ``annotations/{training,validation}/ADE_*.png`` (uint8, 0 = other, 1..150 = classes; both
  0 and 150 occur), ``sceneCategories.txt``.
* Flowers102 (``flowers102/``): ``jpg/image_%05d.jpg``, ``imagelabels.mat`` (``labels``
  1..102, shape (1, N)) and ``setid.mat`` (``trnid``/``valid``/``tstid``, 1-based, (1, k)),
  written with :func:`scipy.io.savemat`; one grayscale JPEG, one with EXIF orientation 6.
* Oxford-IIIT Pets (``oxford_pets/``): ``images/<Breed>_<n>.jpg``,
  ``annotations/{trainval,test}.txt`` (``<image> <class 1..37> <species> <breed id>``) and
  ``list.txt`` with its ``#`` header lines; among the ``.jpg`` files one holds PNG data, one
  GIF data, one RGBA PNG data and one is a JPEG with EXIF orientation 6.

Everything is deterministic (fixed seeds). ``write_real_datasets(root)`` writes all of them
and returns a summary; the per-set writers return their part of it.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

__all__ = ["write_real_datasets", "write_coco", "write_voc", "write_ade20k",
           "write_flowers102", "write_oxford_pets", "VOC_CLASSES", "PET_BREEDS",
           "COCO_CATEGORIES", "COCO_USED_IDS", "EXIF_ORIENTATION"]

EXIF_ORIENTATION = 0x0112  # the EXIF tag id of "Orientation"

VOC_CLASSES = ("aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat",
               "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person",
               "pottedplant", "sheep", "sofa", "train", "tvmonitor")

# The 37 breeds in class-id order (1..37): alphabetical ignoring case; cats capitalised.
PET_BREEDS = (
    "Abyssinian", "american_bulldog", "american_pit_bull_terrier", "basset_hound", "beagle",
    "Bengal", "Birman", "Bombay", "boxer", "British_Shorthair", "chihuahua", "Egyptian_Mau",
    "english_cocker_spaniel", "english_setter", "german_shorthaired", "great_pyrenees",
    "havanese", "japanese_chin", "keeshond", "leonberger", "Maine_Coon", "miniature_pinscher",
    "newfoundland", "Persian", "pomeranian", "pug", "Ragdoll", "Russian_Blue", "saint_bernard",
    "samoyed", "scottish_terrier", "shiba_inu", "Siamese", "Sphynx",
    "staffordshire_bull_terrier", "wheaten_terrier", "yorkshire_terrier")

# All 80 categories, as every real instances_*.json lists them (sparse ids 1..90); the
# fixture's objects use person (1), car (3) and dog (18).
_COCO_80 = """1 person person|2 vehicle bicycle|3 vehicle car|4 vehicle motorcycle
5 vehicle airplane|6 vehicle bus|7 vehicle train|8 vehicle truck|9 vehicle boat
10 outdoor traffic light
11 outdoor fire hydrant|13 outdoor stop sign|14 outdoor parking meter|15 outdoor bench
16 animal bird|17 animal cat|18 animal dog|19 animal horse|20 animal sheep|21 animal cow
22 animal elephant|23 animal bear|24 animal zebra|25 animal giraffe|27 accessory backpack
28 accessory umbrella|31 accessory handbag|32 accessory tie|33 accessory suitcase
34 sports frisbee|35 sports skis|36 sports snowboard|37 sports sports ball|38 sports kite
39 sports baseball bat|40 sports baseball glove|41 sports skateboard|42 sports surfboard
43 sports tennis racket|44 kitchen bottle|46 kitchen wine glass|47 kitchen cup|48 kitchen fork
49 kitchen knife|50 kitchen spoon|51 kitchen bowl|52 food banana|53 food apple
54 food sandwich|55 food orange|56 food broccoli|57 food carrot|58 food hot dog|59 food pizza
60 food donut|61 food cake|62 furniture chair|63 furniture couch|64 furniture potted plant
65 furniture bed|67 furniture dining table|70 furniture toilet|72 electronic tv
73 electronic laptop|74 electronic mouse|75 electronic remote|76 electronic keyboard
77 electronic cell phone|78 appliance microwave|79 appliance oven|80 appliance toaster
81 appliance sink|82 appliance refrigerator|84 indoor book|85 indoor clock|86 indoor vase
87 indoor scissors|88 indoor teddy bear|89 indoor hair drier|90 indoor toothbrush"""
COCO_CATEGORIES = tuple(
    {"supercategory": entry.split(" ", 2)[1], "id": int(entry.split(" ", 2)[0]),
     "name": entry.split(" ", 2)[2]}
    for entry in _COCO_80.replace("\n", "|").split("|"))
COCO_USED_IDS = (1, 3, 18)


def _background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A smooth colour gradient (compresses like a photo, unlike noise)."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = rng.uniform(40, 200, size=3)
    slope = rng.uniform(-1.0, 1.0, size=(3, 2))
    image = base + x[..., None] * slope[:, 0] + y[..., None] * slope[:, 1]
    return np.clip(image, 0, 255).astype(np.uint8)


def _color(rng: np.random.Generator) -> tuple[int, int, int]:
    return tuple(int(v) for v in rng.integers(0, 256, size=3))


def _save_jpeg(image: Image.Image, path: Path, **kwargs) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format="JPEG", quality=90, **kwargs)


def _exif_rotated_jpeg(rng: np.random.Generator, path: Path, width: int, height: int) -> None:
    """A JPEG stored ``width`` x ``height`` with EXIF orientation 6 (display rotated 90° CW)."""
    image = Image.fromarray(_background(rng, width, height))
    ImageDraw.Draw(image).rectangle([2, 2, width // 3, height // 4], fill=(255, 0, 0))
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = 6
    _save_jpeg(image, path, exif=exif.tobytes())


# --------------------------------------------------------------------------------- COCO
def _rle_uncompressed(mask: np.ndarray) -> dict:
    """COCO's uncompressed RLE: run lengths over the column-major (Fortran) flattened mask,
    starting with a run of zeros."""
    flat = np.asarray(mask, dtype=np.uint8).flatten(order="F")
    changes = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], changes, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat[0] == 1:
        counts = [0] + counts
    return {"counts": [int(c) for c in counts], "size": [int(mask.shape[0]), int(mask.shape[1])]}


def _polygon_area(xy: list[float]) -> float:
    x, y = np.asarray(xy[0::2]), np.asarray(xy[1::2])
    return float(abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))) / 2)


def write_coco(root: Path) -> dict:
    """COCO 2017: ``coco/annotations/instances_{train,val}2017.json``, ``coco/{split}2017/``.

    Train has 3 images (one grayscale, one with a crowd object), val 2 (one with a crowd
    object). Objects are drawn into the images at their annotated places.

    Args:
        root: the ``$DETECTRON2_DATASETS`` directory.

    Returns:
        ``{"train": n_images, "val": n_images, "num_classes": 80, "annotations": {split: n}}``.
    """
    root = Path(root)
    rng = np.random.default_rng(2017)
    summary = {"num_classes": len(COCO_CATEGORIES), "annotations": {}}
    image_id, ann_id = 139, 1000
    # per image: (width, height, grayscale, [(category id, kind)]) with kind poly/crowd
    plans = {"train": [(96, 72, False, [(1, "poly"), (3, "poly")]),
                       (80, 112, True, [(18, "poly"), (1, "poly")]),
                       (128, 96, False, [(3, "poly"), (1, "crowd"), (18, "poly")])],
             "val": [(112, 84, False, [(1, "poly"), (18, "poly"), (3, "poly")]),
                     (96, 96, False, [(3, "poly"), (1, "crowd"), (1, "poly")])]}
    for split, plan in plans.items():
        images, annotations = [], []
        for width, height, gray, objects in plan:
            file_name = f"{image_id:012d}.jpg"
            canvas = Image.fromarray(_background(rng, width, height))
            draw = ImageDraw.Draw(canvas)
            for category_id, kind in objects:
                x0 = float(rng.integers(1, width // 2))
                y0 = float(rng.integers(1, height // 2))
                w = float(rng.integers(12, width // 2))
                h = float(rng.integers(12, height // 2))
                if kind == "poly":
                    # a pentagon inside the box, with sub-pixel coordinates as in real COCO
                    xy = [x0 + 0.5 * w, y0 + 0.25, x0 + w - 0.25, y0 + 0.4 * h,
                          x0 + 0.8 * w, y0 + h - 0.5, x0 + 0.2 * w, y0 + h - 0.5,
                          x0 + 0.3, y0 + 0.4 * h]
                    xy = [round(v, 2) for v in xy]
                    draw.polygon(xy, fill=_color(rng))
                    xs, ys = xy[0::2], xy[1::2]
                    bbox = [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)]
                    segmentation, area, crowd = [xy], _polygon_area(xy), 0
                else:
                    mask = np.zeros((height, width), dtype=np.uint8)
                    x1, y1 = int(x0), int(y0)
                    mask[y1:y1 + int(h), x1:x1 + int(w)] = 1
                    mask[y1 + 2:y1 + 5, x1 + 2:x1 + 6] = 0  # a hole: several runs per column
                    draw.bitmap((0, 0), Image.fromarray(mask * 255), fill=_color(rng))
                    ys, xs = np.nonzero(mask)
                    bbox = [float(xs.min()), float(ys.min()), float(xs.max() - xs.min() + 1),
                            float(ys.max() - ys.min() + 1)]
                    segmentation, area, crowd = _rle_uncompressed(mask), float(mask.sum()), 1
                annotations.append({"segmentation": segmentation, "area": area,
                                    "iscrowd": crowd, "image_id": image_id,
                                    "bbox": [round(v, 2) for v in bbox],
                                    "category_id": category_id, "id": ann_id})
                ann_id += 1
            if gray:
                canvas = canvas.convert("L")
            _save_jpeg(canvas, root / "coco" / f"{split}2017" / file_name)
            images.append({"license": 3, "file_name": file_name,
                           "coco_url": f"http://images.cocodataset.org/{split}2017/{file_name}",
                           "height": height, "width": width,
                           "date_captured": "2013-11-14 17:02:52",
                           "flickr_url": "http://farm3.staticflickr.com/0/0_0_z.jpg",
                           "id": image_id})
            image_id += 146
        data = {"info": {"description": "COCO 2017 Dataset", "url": "http://cocodataset.org",
                         "version": "1.0", "year": 2017, "contributor": "COCO Consortium",
                         "date_created": "2017/09/01"},
                "licenses": [{"url": "http://creativecommons.org/licenses/by-nc-sa/2.0/",
                              "id": 1, "name": "Attribution-NonCommercial-ShareAlike License"},
                             {"url": "http://creativecommons.org/licenses/by/2.0/", "id": 3,
                              "name": "Attribution License"}],
                "images": images, "annotations": annotations,
                "categories": [dict(c) for c in COCO_CATEGORIES]}
        json_file = root / "coco" / "annotations" / f"instances_{split}2017.json"
        json_file.parent.mkdir(parents=True, exist_ok=True)
        json_file.write_text(json.dumps(data))
        summary[split] = len(images)
        summary["annotations"][split] = len(annotations)
    return summary


# ---------------------------------------------------------------------------------- VOC
_VOC_XML = """<annotation>
\t<folder>{folder}</folder>
\t<filename>{filename}</filename>
\t<source>
\t\t<database>The {folder} Database</database>
\t\t<annotation>PASCAL {folder}</annotation>
\t\t<image>flickr</image>
\t</source>
\t<size>
\t\t<width>{width}</width>
\t\t<height>{height}</height>
\t\t<depth>3</depth>
\t</size>
\t<segmented>0</segmented>
{objects}</annotation>
"""
_VOC_OBJECT = """\t<object>
\t\t<name>{name}</name>
\t\t<pose>{pose}</pose>
\t\t<truncated>{truncated}</truncated>
\t\t<difficult>{difficult}</difficult>
\t\t<bndbox>
\t\t\t<xmin>{xmin}</xmin>
\t\t\t<ymin>{ymin}</ymin>
\t\t\t<xmax>{xmax}</xmax>
\t\t\t<ymax>{ymax}</ymax>
\t\t</bndbox>
\t</object>
"""
_POSES = ("Left", "Right", "Frontal", "Rear", "Unspecified")


def _write_voc_year(root: Path, year: int, splits: dict[str, list[str]],
                    rng: np.random.Generator, class_cycle: list[int]) -> dict:
    base = root / f"VOC{year}"
    main = base / "ImageSets" / "Main"
    main.mkdir(parents=True, exist_ok=True)
    (base / "Annotations").mkdir(parents=True, exist_ok=True)
    per_image: dict[str, list[tuple[int, int]]] = {}  # id -> [(class index, difficult)]
    objects_total = 0
    for ids in splits.values():
        for stem in ids:
            width, height = int(rng.integers(80, 129)), int(rng.integers(64, 113))
            canvas = Image.fromarray(_background(rng, width, height))
            draw = ImageDraw.Draw(canvas)
            objects, xml_objects = [], []
            for k in range(5):
                cls = class_cycle.pop(0) if class_cycle else int(rng.integers(0, 20))
                w, h = int(rng.integers(16, width // 2)), int(rng.integers(16, height // 2))
                xmin = int(rng.integers(1, width - w))  # 1-based pixel coordinates
                ymin = int(rng.integers(1, height - h))
                xmax, ymax = xmin + w - 1, ymin + h - 1
                difficult = int(k == 4)  # the last object of each image is difficult
                truncated = int(xmin == 1 or ymin == 1 or k == 3)
                draw.rectangle([xmin - 1, ymin - 1, xmax - 1, ymax - 1], outline=_color(rng),
                               width=2)
                xml_objects.append(_VOC_OBJECT.format(
                    name=VOC_CLASSES[cls], pose=_POSES[int(rng.integers(0, 5))],
                    truncated=truncated, difficult=difficult, xmin=xmin, ymin=ymin,
                    xmax=xmax, ymax=ymax))
                objects.append((cls, difficult))
            objects_total += len(objects)
            per_image[stem] = objects
            _save_jpeg(canvas, base / "JPEGImages" / f"{stem}.jpg")
            (base / "Annotations" / f"{stem}.xml").write_text(_VOC_XML.format(
                folder=f"VOC{year}", filename=f"{stem}.jpg", width=width, height=height,
                objects="".join(xml_objects)))
    for split, ids in splits.items():
        (main / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids))
        for cls, name in enumerate(VOC_CLASSES):
            lines = []
            for stem in ids:
                flags = [d for c, d in per_image[stem] if c == cls]
                flag = -1 if not flags else (0 if all(flags) else 1)
                lines.append(f"{stem} {flag:2d}\n")
            (main / f"{name}_{split}.txt").write_text("".join(lines))
    return {split: len(ids) for split, ids in splits.items()} | {"objects": objects_total}


def write_voc(root: Path) -> dict:
    """Pascal VOC as in VOCdevkit: ``VOC2007/`` (train 3 + val 3 = trainval 6, test 4
    images) and ``VOC2012/`` (train 2 + val 1 = trainval 3). Five objects per image, the
    fifth ``difficult``; every one of the 20 classes occurs in VOC2007 trainval and test.

    Args:
        root: the ``$DETECTRON2_DATASETS`` directory.

    Returns:
        ``{"voc2007": {split: n_images, "objects": n}, "voc2012": {...}, "num_classes": 20}``.
    """
    root = Path(root)
    rng = np.random.default_rng(2007)
    train07, val07 = ["000005", "000007", "000012"], ["000009", "000017", "000019"]
    test07 = ["000001", "000002", "000004", "000006"]
    # trainval: 30 objects (20 classes + 10 random); test: 20 objects, one per class
    cycle = list(rng.permutation(20)) + list(rng.integers(0, 20, size=10))
    summary07 = _write_voc_year(root, 2007, {"train": train07, "val": val07}, rng, cycle)
    summary07 |= _write_voc_year(root, 2007, {"test": test07}, rng, list(rng.permutation(20)))
    _append_trainval(root / "VOC2007", train07 + val07)
    summary07["trainval"] = len(train07) + len(val07)
    rng12 = np.random.default_rng(2012)
    train12, val12 = ["2008_000008", "2008_000015"], ["2009_000012"]
    summary12 = _write_voc_year(root, 2012, {"train": train12, "val": val12}, rng12,
                                list(rng12.integers(0, 20, size=15)))
    _append_trainval(root / "VOC2012", train12 + val12)
    summary12["trainval"] = len(train12) + len(val12)
    summary07.pop("objects")
    summary12.pop("objects")
    return {"voc2007": summary07, "voc2012": summary12, "num_classes": len(VOC_CLASSES)}


def _append_trainval(base: Path, ids: list[str]) -> None:
    """``trainval.txt`` and ``<class>_trainval.txt`` as the union of train and val."""
    main = base / "ImageSets" / "Main"
    (main / "trainval.txt").write_text("".join(f"{i}\n" for i in sorted(ids)))
    for name in VOC_CLASSES:
        lines = ((main / f"{name}_train.txt").read_text().splitlines()
                 + (main / f"{name}_val.txt").read_text().splitlines())
        (main / f"{name}_trainval.txt").write_text("".join(f"{x}\n" for x in sorted(lines)))


# ------------------------------------------------------------------------------- ADE20K
def write_ade20k(root: Path) -> dict:
    """ADE20K scene parsing: ``ADEChallengeData2016/images/{training,validation}/ADE_*.jpg``
    and raw ``annotations/{training,validation}/ADE_*.png`` (uint8 L; 0 = other, 1..150).
    Training has 3 images, validation 2; labels 0, 1 and 150 all occur.

    Args:
        root: the ``$DETECTRON2_DATASETS`` directory.

    Returns:
        ``{"training": 3, "validation": 2, "num_classes": 150}``.
    """
    base = Path(root) / "ADEChallengeData2016"
    rng = np.random.default_rng(16)
    sizes = {"training": [(96, 72), (72, 112), (128, 96)], "validation": [(112, 80), (80, 80)]}
    scenes = []
    summary: dict = {"num_classes": 150}
    forced = [1, 150, 12, 150, 3]  # every image contains 0 and one of these
    for split, split_sizes in sizes.items():
        tag = "train" if split == "training" else "val"
        for n, (width, height) in enumerate(split_sizes, 1):
            stem = f"ADE_{tag}_{n:08d}"
            label = np.zeros((height, width), dtype=np.uint8)  # 0: "other" / unlabelled
            label[height // 3:, :] = forced.pop(0)
            for _ in range(3):
                x0, y0 = int(rng.integers(0, width - 16)), int(rng.integers(0, height - 16))
                w, h = int(rng.integers(8, width // 2)), int(rng.integers(8, height // 2))
                label[y0:y0 + h, x0:x0 + w] = int(rng.integers(1, 151))
            label[:4, :6] = 0
            palette = rng.integers(0, 256, size=(256, 3)).astype(np.uint8)
            image = (0.6 * palette[label] + 0.4 * _background(rng, width, height))
            _save_jpeg(Image.fromarray(image.astype(np.uint8)),
                       base / "images" / split / f"{stem}.jpg")
            png = base / "annotations" / split / f"{stem}.png"
            png.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(label, mode="L").save(png)
            scenes.append(f"{stem} {('bedroom', 'street', 'kitchen')[n % 3]}\n")
        summary[split] = len(split_sizes)
    (base / "sceneCategories.txt").write_text("".join(scenes))
    return summary


# ---------------------------------------------------------------------------- Flowers102
def write_flowers102(root: Path) -> dict:
    """Oxford Flowers-102: ``flowers102/jpg/image_%05d.jpg`` (12 images),
    ``imagelabels.mat`` (``labels``, uint8 (1, 12), values in 1..102 incl. 1 and 102) and
    ``setid.mat`` (``trnid``, ``valid``, ``tstid``: 1-based uint16 (1, 4) each). Image 3 is
    grayscale, image 6 carries EXIF orientation 6.

    Args:
        root: the ``$DETECTRON2_DATASETS`` directory.

    Returns:
        ``{"train": 4, "val": 4, "test": 4, "num_classes": 102}`` (train + val = 8).
    """
    from scipy.io import savemat

    base = Path(root) / "flowers102"
    rng = np.random.default_rng(102)
    count = 12
    labels = np.array([[1, 102, 5, 77, 5, 40, 1, 102, 77, 33, 40, 5]], dtype=np.uint8)
    for n in range(1, count + 1):
        path = base / "jpg" / f"image_{n:05d}.jpg"
        width, height = int(rng.integers(64, 129)), int(rng.integers(64, 129))
        if n == 6:
            _exif_rotated_jpeg(rng, path, width, height)
            continue
        image = Image.fromarray(_background(rng, width, height))
        ImageDraw.Draw(image).ellipse([8, 8, width - 8, height - 8], fill=_color(rng))
        _save_jpeg(image.convert("L") if n == 3 else image, path)
    order = rng.permutation(np.arange(1, count + 1))
    setid = {"trnid": np.sort(order[:4]), "valid": np.sort(order[4:8]),
             "tstid": np.sort(order[8:])}
    savemat(base / "imagelabels.mat", {"labels": labels})
    savemat(base / "setid.mat", {k: v.astype(np.uint16)[None, :] for k, v in setid.items()})
    return {"train": 4, "val": 4, "test": 4, "num_classes": 102}


# ------------------------------------------------------------------------ Oxford-IIIT Pets
_PETS_HEADER = ("#Image CLASS-ID SPECIES BREED ID\n"
                "#ID: 1:37 Class ids\n"
                "#SPECIES: 1:Cat 2:Dog\n"
                "#BREED ID: 1-25:Cat 1:12:Dog\n"
                "#All images with 1st letter as captial are cat images\n"
                "#images with small first letter are dog images\n")


def _pet_ids(class_id: int) -> tuple[int, int]:
    """(species 1 cat / 2 dog, breed id within the species) of a 1-based class id."""
    name = PET_BREEDS[class_id - 1]
    species = 1 if name[0].isupper() else 2
    same = [b for b in PET_BREEDS if (b[0].isupper()) == (species == 1)]
    return species, same.index(name) + 1


def write_oxford_pets(root: Path) -> dict:
    """Oxford-IIIT Pets: ``oxford_pets/images/<Breed>_<n>.jpg``,
    ``annotations/{trainval,test}.txt`` (no header, as shipped) and ``annotations/list.txt``
    (with its ``#`` header). trainval has 6 images, test 4; under ``.jpg`` names: one PNG
    (RGB), one GIF (palette), one RGBA PNG, one JPEG with EXIF orientation 6, one grayscale
    JPEG.

    Args:
        root: the ``$DETECTRON2_DATASETS`` directory.

    Returns:
        ``{"trainval": 6, "test": 4, "num_classes": 37, "quirks": {kind: image name}}``.
    """
    base = Path(root) / "oxford_pets"
    rng = np.random.default_rng(37)
    # (image name, class id, quirk)
    splits = {"trainval": [("Abyssinian_100", 1, "png"), ("american_bulldog_10", 2, "exif"),
                           ("Egyptian_Mau_14", 12, "gif"), ("yorkshire_terrier_9", 37, ""),
                           ("Sphynx_3", 34, "rgba"), ("pug_52", 26, "gray")],
              "test": [("Abyssinian_1", 1, ""), ("Bengal_104", 6, ""),
                       ("yorkshire_terrier_1", 37, ""), ("keeshond_7", 19, "")]}
    quirks = {}
    images = base / "images"
    images.mkdir(parents=True, exist_ok=True)
    for entries in splits.values():
        for name, _, quirk in entries:
            path = images / f"{name}.jpg"
            width, height = int(rng.integers(64, 129)), int(rng.integers(64, 129))
            if quirk == "exif":
                _exif_rotated_jpeg(rng, path, width, height)
            else:
                image = Image.fromarray(_background(rng, width, height))
                ImageDraw.Draw(image).ellipse([6, 6, width // 2, height // 2], fill=_color(rng))
                if quirk == "png":
                    image.save(path, format="PNG")
                elif quirk == "gif":
                    image.convert("P", palette=Image.Palette.ADAPTIVE).save(path, format="GIF")
                elif quirk == "rgba":
                    alpha = Image.fromarray(np.full((height, width), 255, np.uint8))
                    ImageDraw.Draw(alpha).rectangle([0, 0, width // 4, height // 4], fill=0)
                    image.putalpha(alpha)
                    image.save(path, format="PNG")
                elif quirk == "gray":
                    _save_jpeg(image.convert("L"), path)
                else:
                    _save_jpeg(image, path)
            if quirk:
                quirks[quirk] = name
    annotations = base / "annotations"
    annotations.mkdir(parents=True, exist_ok=True)
    everything = []
    for split, entries in splits.items():
        lines = [f"{name} {cid} {' '.join(map(str, _pet_ids(cid)))}\n"
                 for name, cid, _ in entries]
        (annotations / f"{split}.txt").write_text("".join(lines))
        everything += lines
    (annotations / "list.txt").write_text(_PETS_HEADER + "".join(sorted(everything)))
    return {"trainval": len(splits["trainval"]), "test": len(splits["test"]),
            "num_classes": len(PET_BREEDS), "quirks": quirks}


def write_real_datasets(root: Path) -> dict:
    """Write every data set above under ``root`` (use it as ``$DETECTRON2_DATASETS``).

    Args:
        root: the directory (created).

    Returns:
        ``{"coco": ..., "voc": ..., "ade20k": ..., "flowers102": ..., "oxford_pets": ...}``,
        each the summary of its writer (image counts per split, ``num_classes``).
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    return {"coco": write_coco(root), "voc": write_voc(root), "ade20k": write_ade20k(root),
            "flowers102": write_flowers102(root), "oxford_pets": write_oxford_pets(root)}


if __name__ == "__main__":
    import sys
    import time

    start = time.perf_counter()
    print(json.dumps(write_real_datasets(Path(sys.argv[1] if len(sys.argv) > 1 else "real")),
                     indent=1))
    print(f"{time.perf_counter() - start:.2f} s", file=sys.stderr)
