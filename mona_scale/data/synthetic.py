"""Deterministic synthetic datasets of coloured shapes, generated on first use.

Three tasks, small enough to learn for real on a CPU within minutes:

* ``shapes_instances``: coloured circles, squares and triangles (1 to 4 per image, possibly
  overlapping) on a textured background, with exact visible-pixel masks, written as PNG
  files plus a COCO instances JSON (``<root>/shapes_instances/<split>.json``).
* ``shapes_cls``: one shape per image, written as an ImageFolder tree
  ``<root>/shapes_cls/<split>/<class>/<index>.png`` plus a split file
  ``<root>/shapes_cls/<split>.txt`` whose lines are ``<path relative to
  <root>/shapes_cls> <label index>``.
* ``shapes_sem``: the instance images' kind of scene as semantic segmentation, written as
  ``<root>/shapes_sem/<split>/{images,labels}/<index>.png``; label maps hold 0 (background)
  or 1 + the shape class, and 255 (ignored) on the pixels either side of every shape edge.

Every image is drawn from a generator seeded by ``(seed, split, index)``, so the same
arguments give byte-identical files. A generator signature (version and all parameters) is
stored with the output; a later call with the same signature returns at once, a different
one regenerates. The file that marks a split as complete (the COCO JSON, or the signature
file of a classification or semantic split) is written last and atomically, and generation
holds a file lock, so several processes (e.g. one per rank) can call the generators
concurrently.
"""
from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import shutil
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pycocotools.mask as mask_util
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets import load_coco_json
from PIL import Image, ImageDraw
from tqdm import tqdm

try:
    import fcntl
except ImportError:  # pragma: no cover - non-POSIX: no inter-process lock
    fcntl = None

__all__ = ["SHAPE_CLASSES", "SEM_SEG_CLASSES", "SEM_SEG_IGNORE", "default_root",
           "make_shapes_instances", "make_shapes_classification", "make_shapes_semantic",
           "register_synthetic_datasets"]

SHAPE_CLASSES = ("circle", "square", "triangle")
SEM_SEG_CLASSES = ("background", *SHAPE_CLASSES)
SEM_SEG_IGNORE = 255  # label of the edge band (detectron2's ignore_label)
GENERATOR_VERSION = 2
MIN_VISIBLE_AREA = 30  # pixels; instances occluded below this are dropped
_COLOUR_DISTANCE = 120.0  # minimum RGB distance between a shape and what it covers
_PROGRESS_MIN = 50  # show a progress bar from this many images on

# name -> (task, split, default number of images, seed)
_DATASETS = {
    "shapes_instances_train": ("instances", "train", 400, 0),
    "shapes_instances_val": ("instances", "val", 80, 1),
    "shapes_cls_train": ("classification", "train", 600, 0),
    "shapes_cls_val": ("classification", "val", 150, 1),
    "shapes_sem_train": ("semantic", "train", 400, 0),
    "shapes_sem_val": ("semantic", "val", 80, 1),
}


def default_root() -> str:
    """The dataset root: ``$MONA_DATASETS`` if set, else ``./datasets/synthetic``.

    Returns:
        The root directory as an absolute path (resolved against the current directory).
    """
    return os.path.abspath(os.environ.get("MONA_DATASETS") or "datasets/synthetic")


# --------------------------------------------------------------------------- drawing
def _rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The generator of one image; ``crc32`` keeps the split's seed stable across runs."""
    return np.random.default_rng([seed, zlib.crc32(split.encode()), index])


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A smooth, muted random colour field plus a random linear gradient (float HxWx3)."""
    coarse = rng.uniform(60, 196, (4, 4, 3)).astype(np.uint8)
    smooth = Image.fromarray(coarse).resize((size, size), Image.BICUBIC)
    angle = rng.uniform(0, 2 * math.pi)
    ys, xs = np.mgrid[0:size, 0:size] / size - 0.5
    ramp = math.cos(angle) * xs + math.sin(angle) * ys
    return np.asarray(smooth, np.float32) + ramp[..., None] * rng.uniform(-40, 40, 3)


def _shape_mask(rng: np.random.Generator, kind: str, size: int,
                extent: tuple[float, float]) -> np.ndarray:
    """A boolean mask of one randomly placed and rotated shape.

    The shape fits in a circle whose diameter is ``extent`` (fractions of ``size``).
    """
    radius = rng.uniform(*extent) * size / 2
    cx, cy = rng.uniform(radius, size - radius, 2)
    angle = rng.uniform(0, 2 * math.pi)
    canvas = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(canvas)
    if kind == "circle":
        draw.ellipse([cx - radius, cy - radius, cx + radius, cy + radius], fill=1)
    else:
        corners = 4 if kind == "square" else 3
        draw.polygon([(cx + radius * math.cos(angle + 2 * math.pi * k / corners),
                       cy + radius * math.sin(angle + 2 * math.pi * k / corners))
                      for k in range(corners)], fill=1)
    return np.asarray(canvas, dtype=bool)


def _paint(rng: np.random.Generator, image: np.ndarray, mask: np.ndarray) -> None:
    """Fill ``mask`` with a random colour far from the mean colour it covers."""
    covered = image[mask].mean(axis=0)
    for _ in range(50):
        colour = rng.uniform(0, 255, 3)
        if np.linalg.norm(colour - covered) >= _COLOUR_DISTANCE:
            break
    image[mask] = colour


def _finish(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    """Add mild pixel noise and convert to uint8."""
    noisy = image + rng.normal(0, 6, image.shape)
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


def _instances_image(rng: np.random.Generator,
                     size: int) -> tuple[np.ndarray, list[tuple[int, np.ndarray]]]:
    """An image of 1-4 shapes and its ``(class index, visible mask)`` pairs."""
    while True:  # redraw in the (rare) case that nothing stays visible
        image = _background(rng, size)
        owner = np.full((size, size), -1)
        kinds = rng.integers(0, len(SHAPE_CLASSES), rng.integers(1, 5))
        for k, kind in enumerate(kinds):
            mask = _shape_mask(rng, SHAPE_CLASSES[kind], size, (0.15, 0.45))
            _paint(rng, image, mask)
            owner[mask] = k  # later shapes occlude earlier ones
        visible = [(int(kind), owner == k) for k, kind in enumerate(kinds)]
        visible = [(kind, mask) for kind, mask in visible if mask.sum() >= MIN_VISIBLE_AREA]
        if visible:
            return _finish(rng, image), visible


def _classification_image(rng: np.random.Generator, size: int, label: int) -> np.ndarray:
    """An image of one shape of class ``label``."""
    image = _background(rng, size)
    _paint(rng, image, _shape_mask(rng, SHAPE_CLASSES[label], size, (0.3, 0.7)))
    return _finish(rng, image)


# --------------------------------------------------------------------------- files
def _signature(task: str, **params) -> dict:
    return {"generator": task, "version": GENERATOR_VERSION, **params}


def _read_json(path: Path) -> dict | None:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file next to ``path``, then rename it over ``path``."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # callers hold the lock
    try:
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive inter-process lock on ``path`` (created if needed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        if fcntl is not None:
            fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            if fcntl is not None:
                fcntl.flock(f, fcntl.LOCK_UN)


def _clear(*paths: Path) -> None:
    """Remove files and directories of an earlier (or interrupted) generation."""
    for path in paths:
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def _progress(count: int, description: str) -> Iterator[int]:
    return tqdm(range(count), desc=description, disable=count < _PROGRESS_MIN)


# --------------------------------------------------------------------------- instances
def _annotation(mask: np.ndarray, label: int, image_id: int, ann_id: int) -> dict:
    """A COCO annotation (compressed RLE, XYWH box of the visible pixels)."""
    rle = mask_util.encode(np.asfortranarray(mask.astype(np.uint8)))
    ys, xs = np.nonzero(mask)
    x0, y0 = int(xs.min()), int(ys.min())
    return {"id": ann_id, "image_id": image_id, "category_id": label + 1,
            "bbox": [x0, y0, int(xs.max()) - x0 + 1, int(ys.max()) - y0 + 1],
            "area": int(mask.sum()), "iscrowd": 0,
            "segmentation": {"size": [int(s) for s in rle["size"]],
                             "counts": rle["counts"].decode("ascii")}}


def _generate_once(lock: Path, read_signature, signature: dict, generate) -> None:
    """Run ``generate()`` unless ``read_signature() == signature``; checked again under a
    file lock, so concurrent processes (one per rank) generate a split once."""
    if read_signature() == signature:
        return
    with _locked(lock):
        if read_signature() != signature:  # not made while we waited
            generate()


def _instances_signature(path: Path) -> dict | None:
    data = _read_json(path)
    return data.get("info", {}).get("signature") if isinstance(data, dict) else None


def make_shapes_instances(root: str, split: str, num_images: int, image_size: int = 128,
                          seed: int = 0) -> str:
    """Generate (once) the ``shapes_instances`` split and return its COCO JSON path.

    Args:
        root: dataset root; files go to ``<root>/shapes_instances/<split>/`` (PNG images)
            and ``<root>/shapes_instances/<split>.json`` (COCO instances, RLE masks).
        split: split name, part of the per-image seed.
        num_images: number of images.
        image_size: side of the square images in pixels.
        seed: base seed.

    Returns:
        The path of the COCO JSON file. An existing JSON made with the same arguments (and
        generator version) is returned without touching any file.
    """
    base = Path(root) / "shapes_instances"
    json_path, image_dir = base / f"{split}.json", base / split
    signature = _signature("shapes_instances", split=split, num_images=num_images,
                           image_size=image_size, seed=seed)

    def generate() -> None:
        _clear(json_path, image_dir)
        image_dir.mkdir(parents=True)
        coco = _generate_instances(image_dir, split, num_images, image_size, seed)
        coco["info"] = {"description": "mona_scale synthetic shapes (instances)",
                        "signature": signature}
        _write_atomic(json_path, json.dumps(coco))

    _generate_once(base / f".{split}.lock", lambda: _instances_signature(json_path),
                   signature, generate)
    return str(json_path)


def _generate_instances(image_dir: Path, split: str, num_images: int, image_size: int,
                        seed: int) -> dict:
    """Write the images of a split and return its COCO dict (without ``info``)."""
    images, annotations = [], []
    for index in _progress(num_images, f"shapes_instances/{split}"):
        pixels, instances = _instances_image(_rng(seed, split, index), image_size)
        file_name = f"{index:06d}.png"
        Image.fromarray(pixels).save(image_dir / file_name)
        images.append({"id": index + 1, "file_name": file_name, "height": image_size,
                       "width": image_size})
        for label, mask in instances:
            annotations.append(_annotation(mask, label, index + 1, len(annotations) + 1))
    categories = [{"id": i + 1, "name": name, "supercategory": "shape"}
                  for i, name in enumerate(SHAPE_CLASSES)]
    return {"images": images, "annotations": annotations, "categories": categories}


# --------------------------------------------------------------------------- classification
def make_shapes_classification(root: str, split: str, num_images: int, image_size: int = 64,
                               seed: int = 0) -> str:
    """Generate (once) the ``shapes_cls`` split and return its image directory.

    Image ``i`` shows one shape of class ``i % 3`` (classes balanced).

    Args:
        root: dataset root; images go to ``<root>/shapes_cls/<split>/<class>/<index>.png``,
            the split file to ``<root>/shapes_cls/<split>.txt`` (lines ``<path relative to
            <root>/shapes_cls> <label index>``) and the generator signature, written last,
            to ``<root>/shapes_cls/<split>.signature.json``.
        split: split name, part of the per-image seed.
        num_images: number of images.
        image_size: side of the square images in pixels.
        seed: base seed.

    Returns:
        The split directory ``<root>/shapes_cls/<split>``. An existing split made with the
        same arguments (and generator version) is returned without touching any file.
    """
    base = Path(root) / "shapes_cls"
    split_dir, list_path = base / split, base / f"{split}.txt"
    signature_path = base / f"{split}.signature.json"
    signature = _signature("shapes_cls", split=split, num_images=num_images,
                           image_size=image_size, seed=seed)

    def generate() -> None:
        _clear(signature_path, list_path, split_dir)
        lines = _generate_classification(base, split, num_images, image_size, seed)
        _write_atomic(list_path, "".join(f"{line}\n" for line in lines))
        _write_atomic(signature_path, json.dumps(signature))

    _generate_once(base / f".{split}.lock", lambda: _read_json(signature_path), signature,
                   generate)
    return str(split_dir)


def _generate_classification(base: Path, split: str, num_images: int, image_size: int,
                             seed: int) -> list[str]:
    """Write the images of a split and return its split-file lines."""
    for name in SHAPE_CLASSES:
        (base / split / name).mkdir(parents=True)
    lines = []
    for index in _progress(num_images, f"shapes_cls/{split}"):
        label = index % len(SHAPE_CLASSES)
        pixels = _classification_image(_rng(seed, split, index), image_size, label)
        relative = f"{split}/{SHAPE_CLASSES[label]}/{index:06d}.png"
        Image.fromarray(pixels).save(base / relative)
        lines.append(f"{relative} {label}")
    return lines


def _classification_dicts(root: str, split: str, num_images: int, seed: int,
                          image_size: int = 64) -> list[dict]:
    """Generate the split if needed and return its detectron2-style dataset dicts."""
    base = Path(make_shapes_classification(root, split, num_images, image_size, seed)).parent
    dicts = []
    with open(base / f"{split}.txt") as f:
        for image_id, line in enumerate(f):
            relative, label = line.split()
            dicts.append({"file_name": str(base / relative), "image_id": image_id,
                          "height": image_size, "width": image_size, "label": int(label)})
    return dicts


# --------------------------------------------------------------------------- semantic
def _edge_band(mask: np.ndarray) -> np.ndarray:
    """Pixels of ``mask`` with a 4-neighbour outside it, and outside pixels next to it."""
    padded = np.pad(mask, 1, mode="edge")
    neighbours = [padded[1:-1, :-2], padded[1:-1, 2:], padded[:-2, 1:-1], padded[2:, 1:-1]]
    differs = np.zeros_like(mask)
    for n in neighbours:
        differs |= n != mask
    return differs


def _semantic_label(size: int, instances: list[tuple[int, np.ndarray]]) -> np.ndarray:
    """The label map of an instances image: 1 + class on visible pixels, 0 elsewhere,
    :data:`SEM_SEG_IGNORE` on the edge band of every shape."""
    label = np.zeros((size, size), np.uint8)
    band = np.zeros((size, size), bool)
    for kind, mask in instances:
        label[mask] = kind + 1
        band |= _edge_band(mask)
    label[band] = SEM_SEG_IGNORE
    return label


def make_shapes_semantic(root: str, split: str, num_images: int, image_size: int = 128,
                         seed: int = 0) -> str:
    """Generate (once) the ``shapes_sem`` split and return its directory.

    Scenes are drawn like ``shapes_instances`` (from a different per-image seed), so one to
    four shapes of :data:`SHAPE_CLASSES` may overlap on a textured background.

    Args:
        root: dataset root; files go to ``<root>/shapes_sem/<split>/images/<index>.png``
            (RGB) and ``.../labels/<index>.png`` (8-bit label maps, classes
            :data:`SEM_SEG_CLASSES`, 255 ignored); the generator signature, written last,
            to ``<root>/shapes_sem/<split>.signature.json``.
        split: split name, part of the per-image seed.
        num_images: number of images.
        image_size: side of the square images in pixels.
        seed: base seed.

    Returns:
        The split directory ``<root>/shapes_sem/<split>``. An existing split made with the
        same arguments is returned without touching any file.
    """
    base = Path(root) / "shapes_sem"
    split_dir, signature_path = base / split, base / f"{split}.signature.json"
    signature = _signature("shapes_sem", split=split, num_images=num_images,
                           image_size=image_size, seed=seed)

    def generate() -> None:
        _clear(signature_path, split_dir)
        for sub in ("images", "labels"):
            (split_dir / sub).mkdir(parents=True)
        for index in _progress(num_images, f"shapes_sem/{split}"):
            pixels, instances = _instances_image(_rng(seed, f"sem_{split}", index), image_size)
            Image.fromarray(pixels).save(split_dir / "images" / f"{index:06d}.png")
            Image.fromarray(_semantic_label(image_size, instances)).save(
                split_dir / "labels" / f"{index:06d}.png")
        _write_atomic(signature_path, json.dumps(signature))

    _generate_once(base / f".{split}.lock", lambda: _read_json(signature_path), signature,
                   generate)
    return str(split_dir)


def _semantic_dicts(root: str, split: str, num_images: int, seed: int,
                    image_size: int = 128) -> list[dict]:
    """Generate the split if needed and return its detectron2 semantic-segmentation dicts."""
    split_dir = Path(make_shapes_semantic(root, split, num_images, image_size, seed))
    return [{"file_name": str(split_dir / "images" / f"{i:06d}.png"),
             "sem_seg_file_name": str(split_dir / "labels" / f"{i:06d}.png"),
             "image_id": i, "height": image_size, "width": image_size}
            for i in range(num_images)]


# --------------------------------------------------------------------------- registration
def _instances_dicts(root: str, split: str, num_images: int, seed: int,
                     name: str) -> list[dict]:
    """Generate the split if needed and load it with detectron2's COCO loader."""
    json_path = make_shapes_instances(root, split, num_images, seed=seed)
    return load_coco_json(json_path, str(Path(json_path).with_suffix("")), name)


def register_synthetic_datasets(root: str | None = None,
                                sizes: dict[str, int] | None = None) -> list[str]:
    """Register the synthetic datasets in detectron2's catalogs (lazily generated).

    Registers ``shapes_instances_train`` (400 images, seed 0), ``shapes_instances_val``
    (80, seed 1), ``shapes_cls_train`` (600, seed 0), ``shapes_cls_val`` (150, seed 1),
    ``shapes_sem_train`` (400, seed 0) and ``shapes_sem_val`` (80, seed 1).
    Files are generated on the first ``DatasetCatalog.get``, not here. Calling again
    replaces earlier registrations (and their metadata) of these names.

    Args:
        root: dataset root; default :func:`default_root`.
        sizes: number of images per dataset name, overriding the defaults above.

    Returns:
        The registered dataset names.
    """
    sizes = dict(sizes or {})
    unknown = sorted(set(sizes) - set(_DATASETS))
    if unknown:
        raise KeyError(f"unknown synthetic datasets {unknown}; valid: {list(_DATASETS)}")
    for name in _DATASETS:
        register_synthetic_dataset(name, root, sizes.get(name))
    return list(_DATASETS)


def register_synthetic_dataset(name: str, root: str | None = None,
                               num_images: int | None = None) -> None:
    """Register one synthetic dataset (replacing an earlier registration of ``name``).

    Args:
        name: one of ``shapes_{instances,cls,sem}_{train,val}``.
        root: dataset root; default :func:`default_root`.
        num_images: images in the set; default the set's standard size.
    """
    if name not in _DATASETS:
        raise KeyError(f"unknown synthetic dataset {name!r}; valid: {list(_DATASETS)}")
    root = os.path.abspath(root) if root is not None else default_root()
    task, split, default_size, seed = _DATASETS[name]
    if name in DatasetCatalog:
        DatasetCatalog.remove(name)
    if name in MetadataCatalog:
        MetadataCatalog.remove(name)
    _REGISTER[task](name, root, split, num_images or default_size, seed)


def synthetic_dataset_dicts(name: str, root: str | None = None,
                            num_images: int | None = None) -> list[dict]:
    """Register ``name`` with these settings, generate it if needed, return its dicts.

    This is what configs call (``L(synthetic_dataset_dicts)(name=...)``), so a job's data
    settings live in its config and reach every process.
    """
    register_synthetic_dataset(name, root, num_images)
    return DatasetCatalog.get(name)


def _register_instances(name: str, root: str, split: str, num_images: int, seed: int) -> None:
    DatasetCatalog.register(
        name, functools.partial(_instances_dicts, root, split, num_images, seed, name))
    base = os.path.join(root, "shapes_instances")
    MetadataCatalog.get(name).set(
        json_file=os.path.join(base, f"{split}.json"), image_root=os.path.join(base, split),
        evaluator_type="coco", thing_classes=list(SHAPE_CLASSES), generated=True)


def _register_classification(name: str, root: str, split: str, num_images: int,
                             seed: int) -> None:
    DatasetCatalog.register(
        name, functools.partial(_classification_dicts, root, split, num_images, seed))
    base = os.path.join(root, "shapes_cls")
    MetadataCatalog.get(name).set(
        split_file=os.path.join(base, f"{split}.txt"), image_root=base,
        evaluator_type="classification", classes=list(SHAPE_CLASSES), generated=True)


def _register_semantic(name: str, root: str, split: str, num_images: int, seed: int) -> None:
    DatasetCatalog.register(
        name, functools.partial(_semantic_dicts, root, split, num_images, seed))
    base = os.path.join(root, "shapes_sem", split)
    MetadataCatalog.get(name).set(
        image_root=os.path.join(base, "images"), sem_seg_root=os.path.join(base, "labels"),
        evaluator_type="sem_seg", stuff_classes=list(SEM_SEG_CLASSES),
        ignore_label=SEM_SEG_IGNORE, generated=True)


# task -> registration function
_REGISTER = {"instances": _register_instances, "classification": _register_classification,
             "semantic": _register_semantic}
