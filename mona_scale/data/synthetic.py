"""Synthetic shapes for quickstarts and tests (coloured circles, squares and triangles on a
textured background, learnable on a CPU in minutes), generated into a folder in the layout of
a public set:

* ``shapes_instances`` (COCO): ``<root>/shapes_instances/<split>/<index>.png`` and
  ``<root>/shapes_instances/<split>.json``; 1 to 4 possibly overlapping shapes per image,
  RLE masks of their visible pixels.
* ``shapes_cls`` (ImageNet folders): ``<root>/shapes_cls/<split>/<class>/<index>.png``; one
  shape per image, image ``i`` of class ``i % 3``; also listed in the split file
  ``<root>/shapes_cls/<split>.txt`` (lines ``<path relative to shapes_cls> <label>``).
* ``shapes_sem`` (ADE20K-style): ``<root>/shapes_sem/<split>/{images,labels}/<index>.png``;
  labels 0 (background), 1 + the shape class, 255 (ignored) either side of a shape's edge.

Image ``i`` is drawn from a generator seeded by ``(seed, split, i)``: the same arguments give
byte-identical files. A split is done when its marker ``<root>/<set>/<split>.done.json``,
written last, holds the generator's arguments; otherwise it is generated again. Files are
written atomically and a new generation deletes only images the split no longer has, so
processes (one per rank) may generate a split at once: they write the same bytes.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import zlib
from pathlib import Path

import numpy as np
import pycocotools.mask as mask_util
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets import load_coco_json
from PIL import Image, ImageDraw
from tqdm import tqdm

from ..atomic_io import atomic_write

__all__ = ["SHAPE_CLASSES", "SEM_SEG_CLASSES", "SEM_SEG_IGNORE", "GENERATOR_VERSION",
           "default_root", "make_shapes_instances", "make_shapes_classification",
           "make_shapes_semantic", "register_synthetic_dataset", "register_synthetic_datasets",
           "synthetic_dataset_dicts"]

SHAPE_CLASSES = ("circle", "square", "triangle")
_CORNERS = (0, 4, 3)  # per shape class; 0: a circle
SEM_SEG_CLASSES = ("background", *SHAPE_CLASSES)
SEM_SEG_IGNORE = 255  # label of the edge band (detectron2's ignore_label)
GENERATOR_VERSION = 2  # bump when the drawn pixels change
MIN_VISIBLE_AREA = 30  # pixels; instances occluded below this are dropped
# set -> (image size, default number of images in train (seed 0), in val (seed 1))
_SETS = {"shapes_instances": (128, 400, 80), "shapes_cls": (64, 600, 150),
         "shapes_sem": (128, 400, 80)}
_NAMES = {f"{s}_{split}": (s, split) for s in _SETS for split in ("train", "val")}


def default_root() -> str:
    """The dataset root: ``$MONA_DATASETS`` if set, else ``./datasets/synthetic``.

    Returns:
        The root directory as an absolute path (resolved against the current directory).
    """
    return os.path.abspath(os.environ.get("MONA_DATASETS") or "datasets/synthetic")


def _draw(seed: int, split: str, index: int, size: int,
          label: int | None) -> tuple[np.ndarray, list[tuple[int, np.ndarray]]]:
    """Image ``index`` of a split and its ``(class, visible mask)`` pairs: one shape of class
    ``label``, or (``None``) 1 to 4 shapes of random classes, later ones in front, each in a
    colour far from the mean colour it covers."""
    rng = np.random.default_rng([seed, zlib.crc32(split.encode()), index])
    ys, xs = np.mgrid[0:size, 0:size] / size - 0.5
    extent = (0.3, 0.7) if label is not None else (0.15, 0.45)  # diameter / side
    while True:  # redraw in the (rare) case that nothing stays visible
        coarse = Image.fromarray(rng.uniform(60, 196, (4, 4, 3)).astype(np.uint8))
        angle = rng.uniform(0, 2 * math.pi)
        ramp = (math.cos(angle) * xs + math.sin(angle) * ys)[..., None]
        image = (np.asarray(coarse.resize((size, size), Image.BICUBIC), np.float32)
                 + ramp * rng.uniform(-40, 40, 3))
        kinds = [label] if label is not None else rng.integers(0, 3, rng.integers(1, 5))
        owner = np.full((size, size), -1)
        for k, kind in enumerate(kinds):
            radius = rng.uniform(*extent) * size / 2  # of the circumcircle
            cx, cy = rng.uniform(radius, size - radius, 2)
            turn, n = rng.uniform(0, 2 * math.pi), _CORNERS[kind]
            canvas = Image.new("L", (size, size), 0)
            if n:
                ImageDraw.Draw(canvas).polygon(
                    [(cx + radius * math.cos(turn + 2 * math.pi * c / n),
                      cy + radius * math.sin(turn + 2 * math.pi * c / n)) for c in range(n)], 1)
            else:
                ImageDraw.Draw(canvas).ellipse([cx - radius, cy - radius, cx + radius,
                                                cy + radius], 1)
            mask = np.asarray(canvas, dtype=bool)
            covered = image[mask].mean(axis=0)
            for _ in range(50):
                colour = rng.uniform(0, 255, 3)
                if np.linalg.norm(colour - covered) >= 120.0:
                    break
            image[mask], owner[mask] = colour, k
        instances = [(int(kind), owner == k) for k, kind in enumerate(kinds)
                     if (owner == k).sum() >= MIN_VISIBLE_AREA]
        if instances:
            noisy = np.rint(image + rng.normal(0, 6, image.shape))
            return np.clip(noisy, 0, 255).astype(np.uint8), instances


def _semantic_label(instances: list[tuple[int, np.ndarray]]) -> np.ndarray:
    """1 + class on visible pixels, 0 elsewhere, 255 where a 4-neighbour's instance differs."""
    ids = sum((k + 1) * mask for k, (_, mask) in enumerate(instances))  # disjoint masks
    p = np.pad(ids, 1, mode="edge")
    label = np.array([0, *(kind + 1 for kind, _ in instances)], np.uint8)[ids]
    label[(p[1:-1, :-2] != ids) | (p[1:-1, 2:] != ids) | (p[:-2, 1:-1] != ids)
          | (p[2:, 1:-1] != ids)] = SEM_SEG_IGNORE
    return label


def _make(name: str, root: str, split: str, num_images: int, size: int,
          seed: int) -> tuple[Path, list[dict]]:
    """Generate a split of set ``name`` unless its done-marker matches; its folder and
    detectron2 dicts (of ``shapes_cls`` and ``shapes_sem``)."""
    base, folder = Path(root) / name, Path(root) / name / split
    sub = {"shapes_cls": SHAPE_CLASSES, "shapes_sem": ("images",)}.get(name, ("",))
    dicts = [{"file_name": str(folder / sub[i % len(sub)] / f"{i:06d}.png"), "image_id": i,
              "height": size, "width": size} for i in range(num_images)]
    for i, d in enumerate(dicts):
        if name == "shapes_cls":
            d["label"] = i % 3
        if name == "shapes_sem":
            d["sem_seg_file_name"] = str(folder / "labels" / f"{i:06d}.png")
    marker = base / f"{split}.done.json"
    params = {"generator": name, "version": GENERATOR_VERSION, "split": split,
              "num_images": num_images, "image_size": size, "seed": seed}
    with contextlib.suppress(OSError, ValueError):
        if json.loads(marker.read_text()) == params:
            return folder, dicts
    marker.unlink(missing_ok=True)
    annotations = []
    for i, d in enumerate(tqdm(dicts, f"{name}/{split}", disable=num_images < 50)):
        pixels, instances = _draw(seed, f"sem_{split}" if name == "shapes_sem" else split, i,
                                  size, i % 3 if name == "shapes_cls" else None)
        files = {d["file_name"]: pixels}
        if name == "shapes_sem":
            files[d["sem_seg_file_name"]] = _semantic_label(instances)
        for path, array in files.items():
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            with atomic_write(path, "wb") as f:
                Image.fromarray(array).save(f, format="PNG")
        for kind, mask in instances if name == "shapes_instances" else ():
            rle = mask_util.encode(np.asfortranarray(mask.astype(np.uint8)))
            annotations.append({
                "id": len(annotations) + 1, "image_id": i + 1, "category_id": kind + 1,
                "bbox": [int(v) for v in mask_util.toBbox(rle)], "area": int(mask.sum()),
                "iscrowd": 0, "segmentation": {"size": rle["size"],
                                               "counts": rle["counts"].decode("ascii")}})
    if name == "shapes_instances":
        with atomic_write(base / f"{split}.json") as f:
            json.dump({"images": [{"id": i + 1, "file_name": f"{i:06d}.png", "height": size,
                                   "width": size} for i in range(num_images)],
                       "annotations": annotations,
                       "categories": [{"id": k + 1, "name": c, "supercategory": "shape"}
                                      for k, c in enumerate(SHAPE_CLASSES)]}, f)
    if name == "shapes_cls":
        with atomic_write(base / f"{split}.txt") as f:
            f.writelines(f"{Path(d['file_name']).relative_to(base)} {d['label']}\n" for d in dicts)
    written = {Path(d[k]) for d in dicts for k in ("file_name", "sem_seg_file_name") if k in d}
    for stale in set(folder.rglob("*.png")) - written:  # from a larger generation
        stale.unlink(missing_ok=True)
    with atomic_write(marker) as f:
        json.dump(params, f)
    return folder, dicts


def make_shapes_instances(root: str, split: str, num_images: int, image_size: int = 128,
                          seed: int = 0) -> str:
    """Generate a ``shapes_instances`` split unless done (layouts: the module docstring).

    Args:
        root: dataset root.
        split: split name, part of the per-image seed.
        num_images: number of images.
        image_size: side of the square images in pixels.
        seed: base seed.

    Returns:
        The COCO JSON path ``<root>/shapes_instances/<split>.json``.
    """
    return f"{_make('shapes_instances', root, split, num_images, image_size, seed)[0]}.json"


def make_shapes_classification(root: str, split: str, num_images: int, image_size: int = 64,
                               seed: int = 0) -> str:
    """As :func:`make_shapes_instances` for ``shapes_cls``; the ImageFolder root
    ``<root>/shapes_cls/<split>``."""
    return str(_make("shapes_cls", root, split, num_images, image_size, seed)[0])


def make_shapes_semantic(root: str, split: str, num_images: int, image_size: int = 128,
                         seed: int = 0) -> str:
    """As :func:`make_shapes_instances` for ``shapes_sem`` (scenes drawn as the instance
    set's, from other seeds); the split folder ``<root>/shapes_sem/<split>``."""
    return str(_make("shapes_sem", root, split, num_images, image_size, seed)[0])


def register_synthetic_dataset(name: str, root: str | None = None,
                               num_images: int | None = None) -> None:
    """Register one synthetic dataset, generated on its first ``DatasetCatalog.get``
    (replacing an earlier registration of ``name`` and its metadata).

    Args:
        name: ``shapes_{instances,cls,sem}_{train,val}`` (train: seed 0, 400 / 600 / 400
            images; val: seed 1, 80 / 150 / 80 images).
        root: dataset root; default :func:`default_root`.
        num_images: images in the set; default the set's standard size.
    """
    if name not in _NAMES:
        raise KeyError(f"unknown synthetic dataset {name!r}; valid: {list(_NAMES)}")
    (kind, split), seed = _NAMES[name], int(name.endswith("_val"))
    size, num_images = _SETS[kind][0], num_images or _SETS[kind][1 + seed]
    root = default_root() if root is None else os.path.abspath(root)
    folder = os.path.join(root, kind, split)

    def dicts() -> list[dict]:
        records = _make(kind, root, split, num_images, size, seed)[1]
        if kind == "shapes_instances":
            return load_coco_json(f"{folder}.json", folder, name)
        return records

    DatasetCatalog.pop(name, None)
    MetadataCatalog.pop(name, None)
    DatasetCatalog.register(name, dicts)
    meta = {"shapes_instances": dict(json_file=f"{folder}.json", image_root=folder,
                                     evaluator_type="coco", thing_classes=list(SHAPE_CLASSES)),
            "shapes_cls": dict(image_root=folder, evaluator_type="classification",
                               classes=list(SHAPE_CLASSES)),
            "shapes_sem": dict(image_root=os.path.join(folder, "images"),
                               sem_seg_root=os.path.join(folder, "labels"),
                               evaluator_type="sem_seg", stuff_classes=list(SEM_SEG_CLASSES),
                               ignore_label=SEM_SEG_IGNORE)}[kind]
    MetadataCatalog.get(name).set(generated=True, **meta)


def register_synthetic_datasets(root: str | None = None,
                                sizes: dict[str, int] | None = None) -> list[str]:
    """Register every synthetic dataset (see :func:`register_synthetic_dataset`).

    Args:
        root: dataset root; default :func:`default_root`.
        sizes: number of images per dataset name, overriding the defaults.

    Returns:
        The registered dataset names.
    """
    sizes = sizes or {}
    if set(sizes) - set(_NAMES):
        raise KeyError(f"unknown synthetic datasets {sorted(set(sizes) - set(_NAMES))}; "
                       f"valid: {list(_NAMES)}")
    for name in _NAMES:
        register_synthetic_dataset(name, root, sizes.get(name))
    return list(_NAMES)


def synthetic_dataset_dicts(name: str, root: str | None = None,
                            num_images: int | None = None) -> list[dict]:
    """Register ``name`` with these settings and return its dicts, generated unless done
    (configs call ``L(synthetic_dataset_dicts)(name=...)``, so every process gets them).

    Args:
        name, root, num_images: as :func:`register_synthetic_dataset`.

    Returns:
        detectron2 dataset dicts.
    """
    register_synthetic_dataset(name, root, num_images)
    return DatasetCatalog.get(name)
