"""Check a config's data before a long run.

    python -m mona_scale.data.check --config-file configs/voc/retinanet_swin_l_mona_1x.py
    python -m mona_scale.data.check --config-file ... --workers 16 [key=value overrides]

Resolves the config's train and test sets (``dataloader.{train,test}.dataset``) exactly as
training does, counts images and annotations per class, opens every image (full decode, as
training reads it) and every semantic mask, and prints a table of problems, each with its
split and path: a missing file, an undecodable image or mask, an image whose size differs
from its annotation, a label or category id out of range, an empty label, an invalid
annotation (what ``mona-shards`` rejects), a set that cannot be read at all, and class lists
that differ between the train and test sets or from the model's ``num_classes``.

Exit status: 0 when no problem was found, 1 when some were, 2 for a usage error (e.g. a
streaming config: its shards are checked by ``mona-shards verify``).
"""
from __future__ import annotations

import argparse
import copy
import functools
import inspect
import json
import logging
import os
import re
import sys
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from PIL import Image
from tabulate import tabulate
from tqdm import tqdm

__all__ = ["Problem", "SplitData", "resolve_split", "check_labels", "check_files",
           "check_record_files", "unpaired_files", "compare_splits", "class_counts",
           "diagnose_coco_json", "diagnose_voc", "is_stream_config", "model_num_classes",
           "run_checks", "main"]

logger = logging.getLogger(__name__)

SPLITS = ("train", "test")
DEFAULT_IGNORE_LABEL = 255
EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE = 0, 1, 2
_EXIF_ORIENTATION = 0x0112
_ROTATED = (5, 6, 7, 8)  # EXIF orientations that swap width and height


@dataclass(frozen=True)
class Problem:
    """One problem found in the data.

    Attributes:
        split: ``train``, ``test`` or ``train/test`` (a mismatch between the two).
        kind: what is wrong, e.g. ``missing file``, ``undecodable image``.
        path: the file it concerns (image, mask, annotation or split file, config).
        detail: a human-readable explanation.
    """

    split: str
    kind: str
    path: str
    detail: str = ""


@dataclass
class SplitData:
    """A resolved split: its records and what is known about its classes.

    Attributes:
        split: ``train`` or ``test``.
        records: the dataset dicts the loader will use (empty records dropped when the
            loader filters them).
        task: ``detection``, ``sem_seg`` or ``classification``.
        names: the registered detectron2 dataset names the node reads.
        classes: class names (from the datasets' metadata, else ``"0"``, ``"1"``, ...).
        classes_from_metadata: whether ``classes`` came from metadata.
        ignore_label: the semantic-segmentation ignore value.
        source: the file the split comes from (annotation file, split file, directory).
        skipped_empty: records without (non-crowd) annotations dropped by the loader.
        empty: records without annotations that the loader keeps (e.g. test images).
        id_map: COCO category id -> contiguous id, when the metadata has one.
    """

    split: str
    records: list[dict]
    task: str
    names: list[str] = field(default_factory=list)
    classes: list[str] = field(default_factory=list)
    classes_from_metadata: bool = False
    ignore_label: int = DEFAULT_IGNORE_LABEL
    source: str = ""
    skipped_empty: int = 0
    empty: int = 0
    id_map: dict | None = None


# ------------------------------------------------------------------------ config nodes
def _target_name(node) -> str:
    target = node.get("_target_") if hasattr(node, "get") else None
    if target is None:
        return ""
    return target if isinstance(target, str) else getattr(target, "__name__", str(target))


def is_stream_config(cfg) -> bool:
    """Whether the config's loaders read webdataset shards (a ``*_stream.py`` config).

    Args:
        cfg: a loaded LazyConfig.

    Returns:
        True if a train or test loader (or its dataset) is a shard stream.
    """
    for split in SPLITS:
        node = cfg.dataloader.get(split)
        if node is None:
            continue
        names = (_target_name(node), _target_name(node.get("dataset") or {}))
        if any("stream" in n or "shard" in n for n in names):
            return True
    return False


def _locate(target) -> Callable | None:
    from detectron2.utils.registry import locate

    try:
        return locate(target) if isinstance(target, str) else target
    except Exception:  # an unknown target fails later, at instantiation, with its own error
        return None


def _parameters(target) -> dict[str, inspect.Parameter]:
    """The keyword parameters of ``target``; ``get_dataset_dicts`` forwards its ``**kwargs``
    to detectron2's ``get_detection_dataset_dicts``, whose parameters are added."""
    from mona_scale.data.catalog import get_dataset_dicts

    from detectron2.data import get_detection_dataset_dicts

    function = _locate(target)
    try:
        params = dict(inspect.signature(function).parameters)
    except (TypeError, ValueError):
        return {}
    if function is get_dataset_dicts:
        params.update(inspect.signature(get_detection_dataset_dicts).parameters)
    return params


def _relax(node) -> bool:
    """Let the check see what the reader would drop or check itself, and return whether the
    loader drops records without annotations (``filter_empty``).

    Reader-side image checks (``check_images``) are turned off: this check opens every image
    itself, in parallel, and reports all broken ones instead of the first.
    """
    params = _parameters(node.get("_target_"))
    filter_empty = False
    if "filter_empty" in params:
        default = params["filter_empty"].default
        default = False if default is inspect.Parameter.empty else default
        filter_empty = bool(node.get("filter_empty", default))
        node.filter_empty = False
    if "check_images" in params:
        node.check_images = False
    return filter_empty


def _registered_names(node) -> list[str]:
    """The detectron2 dataset names a dataset node reads (``names``, ``dataset_name``,
    ``name``), those registered in the ``DatasetCatalog``."""
    from detectron2.data import DatasetCatalog

    found = []
    for key in ("names", "dataset_name", "name"):
        value = node.get(key) if hasattr(node, "get") else None
        values = [value] if isinstance(value, str) else list(value or [])
        found += [v for v in values if isinstance(v, str)]
    registered = set(DatasetCatalog.list())
    return [n for n in found if n in registered]


def _source_path(node, names: Sequence[str]) -> str:
    """The file or directory a split is read from, for messages."""
    from mona_scale.data.cls_readers import datasets_root

    from detectron2.data import MetadataCatalog

    for key in ("split_file", "json_file", "root", "image_root"):
        value = node.get(key) if hasattr(node, "get") else None
        if isinstance(value, str):
            return value if os.path.isabs(value) else os.path.join(datasets_root(), value)
    for name in names:
        meta = MetadataCatalog.get(name)
        for key in ("json_file", "dirname", "sem_seg_root", "split_file", "image_root"):
            if meta.get(key, None):
                return str(meta.get(key))
    return ""


def model_num_classes(model_cfg) -> int:
    """The first integer ``num_classes`` in the model config, breadth first (the
    classifier's, ``roi_heads.num_classes``, ``decode_head.num_classes``, ...).

    Args:
        model_cfg: ``cfg.model``.

    Returns:
        The number, or 0 when the model names none.
    """
    queue = [model_cfg]
    while queue:
        node = queue.pop(0)
        if not hasattr(node, "items"):
            continue
        value = node.get("num_classes", None)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
        for key in node.keys():
            if key != "num_classes":
                child = node.get(key)
                queue += [child] if hasattr(child, "items") else []
    return 0


# -------------------------------------------------------------------------- resolving
def _task(records: list[dict]) -> str:
    for record in records[:100]:
        if "sem_seg_file_name" in record:
            return "sem_seg"
        if "label" in record:
            return "classification"
        if "annotations" in record:
            return "detection"
    return "classification" if not records else "detection"


def _has_objects(record: dict) -> bool:
    """detectron2's ``filter_empty`` rule: at least one non-crowd annotation."""
    return any(ann.get("iscrowd", 0) == 0 for ann in record.get("annotations", []))


def _metadata_classes(names: Sequence[str], task: str) -> list[str]:
    from detectron2.data import MetadataCatalog

    keys = {"detection": ("thing_classes",), "sem_seg": ("stuff_classes",),
            "classification": ("classes", "thing_classes", "stuff_classes")}[task]
    for name in names:
        meta = MetadataCatalog.get(name)
        for key in keys:
            if meta.get(key, None):
                return [str(c) for c in meta.get(key)]
    return []


def _metadata_value(names: Sequence[str], key: str, default=None):
    from detectron2.data import MetadataCatalog

    for name in names:
        value = MetadataCatalog.get(name).get(key, None)
        if value is not None:
            return value
    return default


def _load_problems(split: str, error: Exception, source: str, names: Sequence[str]
                   ) -> list[Problem]:
    """Problems explaining why a split could not be read: precise ones from the raw files
    where a diagnosis exists (COCO json, VOC xml), else the reader's error itself."""
    message = f"{type(error).__name__}: {error}".replace("\n", " ")
    if isinstance(error, AssertionError) and "cannot be set to a different value" in message:
        found = [p for name in names for p in _registered_classes_mismatch(split, name)]
        return found or [Problem(split, "category mismatch", source, message[:500])]
    found = []
    for name in names:
        found += _diagnose(split, name)
    return found or [Problem(split, _kind_of(message), _file_in(message, source),
                             message[:500])]


def _file_in(message: str, default: str) -> str:
    """The first existing file a reader's error message names (quoted, or before a
    ``:<line>``), else ``default``."""
    candidates = re.findall(r"'([^'\n]+)'", message) + re.findall(r"(\S+?):\d+:", message)
    return next((c for c in candidates if os.path.isfile(c)), default)


_MESSAGE_KINDS = (("outside [", "label out of range"), ("out of range", "label out of range"),
                  ("must lie in", "label out of range"),
                  ("expected '<path> <label>'", "empty label"),
                  ("does not exist", "missing file"), ("No such file", "missing file"),
                  ("not a readable image", "undecodable image"),
                  ("cannot identify image", "undecodable image"))


def _kind_of(message: str) -> str:
    """The problem kind a reader's error message describes (``unreadable dataset`` when it
    says nothing recognisable)."""
    return next((kind for text, kind in _MESSAGE_KINDS if text in message),
                "unreadable dataset")


def _short(names: Sequence[str], count: int = 5) -> str:
    shown = ", ".join(map(str, names[:count]))
    return f"{shown}, ... ({len(names)})" if len(names) > count else f"{shown} ({len(names)})"


def _registered_classes_mismatch(split: str, name: str) -> list[Problem]:
    """A COCO json whose categories differ from the classes its dataset name is registered
    with (detectron2 refuses to load it)."""
    from detectron2.data import MetadataCatalog

    meta = MetadataCatalog.get(name)
    json_file = meta.get("json_file", None)
    if not json_file or not os.path.isfile(json_file):
        return []
    with open(json_file) as f:
        categories = sorted(json.load(f).get("categories", []), key=lambda c: c["id"])
    in_file = [c["name"] for c in categories]
    registered = list(meta.get("thing_classes", []))
    if in_file == registered:
        return []
    return [Problem(split, "category mismatch", json_file,
                    f"its categories [{_short(in_file)}] differ from the classes "
                    f"{name!r} is registered with [{_short(registered)}]")]


def _diagnose(split: str, name: str) -> list[Problem]:
    from detectron2.data import MetadataCatalog

    meta = MetadataCatalog.get(name)
    try:
        if meta.get("json_file", None) and os.path.isfile(meta.json_file):
            return diagnose_coco_json(split, meta.json_file, meta.get("image_root", ""))
        if meta.get("dirname", None) and meta.get("split", None):
            return diagnose_voc(split, meta.dirname, meta.split, meta.get("thing_classes", []))
    except Exception as e:  # the diagnosis itself failed: the generic problem stands
        logger.warning("could not diagnose %s: %s", name, e)
    return []


def diagnose_coco_json(split: str, json_file: str, image_root: str) -> list[Problem]:
    """Annotations of a COCO json that detectron2's reader refuses: an unknown category id
    or image id, or an empty box.

    Args:
        split: for the problems.
        json_file: the COCO annotation file.
        image_root: the image directory (for the paths in the problems).

    Returns:
        One problem per bad annotation (path: its image, or the json file).
    """
    with open(json_file) as f:
        data = json.load(f)
    categories = {c["id"] for c in data.get("categories", [])}
    ids = sorted(categories)
    images = {i["id"]: os.path.join(image_root, i["file_name"]) for i in data.get("images", [])}
    problems = []
    for ann in data.get("annotations", []):
        path = images.get(ann.get("image_id"), json_file)
        where = f"annotation {ann.get('id')} in {json_file}"
        if ann.get("category_id") not in categories:
            problems.append(Problem(split, "label out of range", path,
                                    f"{where}: category_id {ann.get('category_id')} is not "
                                    f"among the ids of its categories [{_short(ids)}]"))
        if ann.get("image_id") not in images:
            problems.append(Problem(split, "invalid annotation", json_file,
                                    f"{where}: image_id {ann.get('image_id')} is not an image"))
        if "bbox" in ann and len(ann["bbox"]) == 0:
            problems.append(Problem(split, "invalid annotation", path, f"{where}: empty bbox"))
    return problems


def diagnose_voc(split: str, dirname: str, image_set: str, classes: Sequence[str]
                 ) -> list[Problem]:
    """VOC annotation files that detectron2's reader refuses: missing or malformed XML, an
    object class not among ``classes``, a box that is not numbers.

    Args:
        split: for the problems.
        dirname: the ``VOC20xx`` directory.
        image_set: the ``ImageSets/Main/<image_set>.txt`` list.
        classes: the class names.

    Returns:
        One problem per bad file or object.
    """
    list_file = os.path.join(dirname, "ImageSets", "Main", f"{image_set}.txt")
    if not os.path.isfile(list_file):
        return [Problem(split, "missing file", list_file, "the image set list does not exist")]
    with open(list_file) as f:
        ids = [line.split()[0] for line in f if line.strip()]
    problems = []
    for image_id in ids:
        problems += _voc_xml_problems(split, os.path.join(dirname, "Annotations",
                                                          f"{image_id}.xml"), classes)
    return problems


def _voc_xml_problems(split: str, path: str, classes: Sequence[str]) -> list[Problem]:
    if not os.path.isfile(path):
        return [Problem(split, "missing file", path, "annotation file does not exist")]
    try:
        objects = ET.parse(path).findall("object")
    except ET.ParseError as e:
        return [Problem(split, "undecodable annotation", path, str(e))]
    problems = []
    for k, obj in enumerate(objects):
        name = obj.findtext("name")
        if name not in classes:
            problems.append(Problem(split, "label out of range", path,
                                    f"object {k}: class {name!r} is not a VOC class"))
        try:
            [float(obj.find("bndbox").findtext(t)) for t in ("xmin", "ymin", "xmax", "ymax")]
        except (AttributeError, TypeError, ValueError):
            problems.append(Problem(split, "invalid annotation", path,
                                    f"object {k}: bndbox is not four numbers"))
    return problems


def resolve_split(cfg, split: str) -> tuple[SplitData | None, list[Problem]]:
    """Instantiate ``cfg.dataloader.<split>.dataset`` as training would.

    Args:
        cfg: the loaded config (not modified).
        split: ``train`` or ``test``.

    Returns:
        The split's data (None when it cannot be read) and the problems met reading it.
    """
    from detectron2.config import instantiate

    loader = cfg.dataloader.get(split)
    if loader is None or loader.get("dataset") is None:
        logger.warning("the config has no dataloader.%s.dataset; %s set not checked", split,
                       split)
        return None, []
    node = copy.deepcopy(loader.dataset)
    filter_empty = _relax(node) if hasattr(node, "get") else False
    names = _registered_names(node) if hasattr(node, "get") else []
    source = _source_path(node, names) if hasattr(node, "get") else ""
    logger.info("reading the %s set (%s)", split, ", ".join(names) or source or "config node")
    try:
        records = list(instantiate(node))
    except Exception as e:  # any reader error is a problem to report, not a crash
        return None, _load_problems(split, e, source, names)
    names = names or _registered_names(node)  # readers may register their sets
    task = _task(records)
    data = SplitData(split, records, task, names, source=source,
                     ignore_label=int(_metadata_value(names, "ignore_label",
                                                      DEFAULT_IGNORE_LABEL)))
    data.classes = _metadata_classes(names, task)
    data.classes_from_metadata = bool(data.classes)
    data.id_map = _metadata_value(names, "thing_dataset_id_to_contiguous_id")
    if task == "detection":
        kept = [r for r in records if _has_objects(r)]
        if filter_empty:
            data.skipped_empty, data.records = len(records) - len(kept), kept
        else:
            data.empty = len(records) - len(kept)
    return data, []


# ----------------------------------------------------------------------- label checks
def _classification_label_problem(label, num_classes: int) -> tuple[str, str] | None:
    if label is None or (isinstance(label, (list, tuple)) and len(label) == 0):
        return "empty label", "the record has no label"
    if isinstance(label, (list, tuple, np.ndarray)):
        values = np.asarray(label, dtype=float)
        if num_classes and len(values) != num_classes:
            return "label out of range", (f"multi-hot label of length {len(values)}, expected "
                                          f"{num_classes}")
        if not np.isin(values, (0.0, 1.0)).all():
            return "label out of range", f"multi-hot label holds values other than 0/1: {label}"
        if values.sum() == 0:
            return "empty label", "multi-hot label with no positive class"
        return None
    if isinstance(label, bool) or not isinstance(label, (int, np.integer)):
        return "label out of range", f"label {label!r} is not an integer"
    if label < 0 or (num_classes and label >= num_classes):
        return "label out of range", f"label {label} outside [0, {num_classes or 'inf'})"
    return None


def _detection_problems(split: str, record: dict, num_classes: int) -> list[Problem]:
    from mona_scale.data.shards.sample import InvalidSample, validate_record

    path = record.get("file_name", "")
    for k, ann in enumerate(record.get("annotations", [])):
        category = ann.get("category_id") if isinstance(ann, dict) else None
        if (not isinstance(category, (int, np.integer)) or category < 0
                or (num_classes and category >= num_classes)):
            return [Problem(split, "label out of range", path,
                            f"annotation {k}: category_id {category!r} outside "
                            f"[0, {num_classes or 'inf'})")]
    try:
        validate_record(record, num_classes or None)
    except InvalidSample as e:
        return [Problem(split, "invalid annotation", path, str(e))]
    return []


def check_labels(data: SplitData) -> list[Problem]:
    """Label problems of every record of a split (no file is opened).

    Args:
        data: a resolved split; ``len(data.classes)`` is the number of classes.

    Returns:
        Problems: ``label out of range`` (category id / label / multi-hot length),
        ``empty label`` (classification), ``invalid annotation`` (boxes, polygons, RLE).
    """
    num_classes = len(data.classes)
    problems = []
    for record in data.records:
        path = record.get("file_name", "")
        if data.task == "classification":
            found = _classification_label_problem(record.get("label"), num_classes)
            problems += [Problem(data.split, found[0], path, found[1])] if found else []
        elif data.task == "detection":
            problems += _detection_problems(data.split, record, num_classes)
    return problems


# ------------------------------------------------------------------------ file checks
def _expected_size(record: dict) -> tuple[int, int] | None:
    if "width" in record and "height" in record:
        return int(record["width"]), int(record["height"])
    return None


def _exists(path: str) -> bool:
    from detectron2.utils.file_io import PathManager

    return bool(path) and PathManager.isfile(path)


def _display_path(path: str) -> str:
    """The file behind a path read through a converting ``PathManager`` handler (e.g.
    ``reduce-zero-label://<file>``, ADE20K's raw labels), else the path itself."""
    scheme, sep, rest = path.partition("://")
    return rest if sep and scheme not in ("file", "http", "https", "s3", "gs") else path


def _decode_image(path: str) -> tuple[int, int]:
    """Fully decode an image as training reads it (through detectron2's ``PathManager``,
    EXIF orientation applied); return its (width, height)."""
    from detectron2.utils.file_io import PathManager

    with PathManager.open(path, "rb") as f, Image.open(f) as image:
        image.load()
        width, height = image.size
        orientation = image.getexif().get(_EXIF_ORIENTATION, 1)
    return (height, width) if orientation in _ROTATED else (width, height)


def _decode_mask(path: str) -> np.ndarray:
    """A semantic mask as detectron2's ``DatasetMapper`` reads it (mode ``L``, through
    ``PathManager``, so converting handlers such as ADE20K's ``reduce-zero-label://``
    apply)."""
    from detectron2.data import detection_utils as utils

    return utils.read_image(path, "L").squeeze(2)


def _mask_problems(record: dict, size: tuple[int, int] | None, num_classes: int,
                   ignore_label: int) -> tuple[list[tuple[str, str, str]], np.ndarray | None]:
    name = record["sem_seg_file_name"]
    path = _display_path(name)
    read_as = f" (read as {name.partition('://')[0]}://)" if path != name else ""
    if not _exists(name):
        return [("missing file", path, "semantic mask does not exist")], None
    try:
        mask = _decode_mask(name)
    except Exception as e:  # PIL raises many types for broken files
        return [("undecodable mask", path, f"{type(e).__name__}: {e}{read_as}")], None
    problems = []
    if size is not None and (mask.shape[1], mask.shape[0]) != size:
        problems.append(("size mismatch", path, f"mask is {mask.shape[1]}x{mask.shape[0]}, "
                                                f"image {size[0]}x{size[1]}"))
    histogram = np.bincount(mask.ravel(), minlength=256)
    bad = [v for v in np.flatnonzero(histogram)
           if v != ignore_label and num_classes and v >= num_classes]
    if bad:
        problems.append(("label out of range", path,
                         f"mask values {[int(v) for v in bad[:10]]}{read_as} outside "
                         f"[0, {num_classes}) and not the ignore value {ignore_label}"))
    return problems, histogram


def check_record_files(record: dict, num_classes: int = 0,
                       ignore_label: int = DEFAULT_IGNORE_LABEL
                       ) -> tuple[list[tuple[str, str, str]], np.ndarray | None]:
    """Open a record's image (full decode) and, for semantic segmentation, its mask.

    Args:
        record: a dataset dict (``file_name``, optional ``width``/``height``,
            ``sem_seg_file_name``).
        num_classes: mask values must be below it (or equal ``ignore_label``); 0: unchecked.
        ignore_label: the mask's ignore value.

    Returns:
        ``(kind, path, detail)`` problems, and the mask's histogram of values (256 bins;
        None without a readable mask).
    """
    path = record.get("file_name", "")
    if not _exists(path):
        return [("missing file", path, "image does not exist")], None
    try:
        size = _decode_image(path)
    except Exception as e:  # PIL raises many types for broken files
        return [("undecodable image", path, f"{type(e).__name__}: {e}")], None
    problems = []
    expected = _expected_size(record)
    if expected is not None and expected != size:
        problems.append(("size mismatch", path, f"image is {size[0]}x{size[1]} (after EXIF "
                                                f"orientation), record says "
                                                f"{expected[0]}x{expected[1]}"))
    if "sem_seg_file_name" not in record:
        return problems, None
    more, histogram = _mask_problems(record, size, num_classes, ignore_label)
    return problems + more, histogram


def _mapped(function: Callable, items: list, workers: int, description: str) -> Iterator:
    """``map(function, items)`` in order, in a process pool when ``workers > 1``."""
    progress = dict(total=len(items), desc=description, unit="img", mininterval=2.0,
                    file=sys.stderr)
    if workers <= 1 or len(items) < 2:
        yield from tqdm(map(function, items), **progress)
        return
    chunk = max(1, min(64, len(items) // (4 * workers)))
    with ProcessPoolExecutor(workers) as pool:
        yield from tqdm(pool.map(function, items, chunksize=chunk), **progress)


def check_files(data: SplitData, workers: int = 1) -> tuple[list[Problem], np.ndarray | None]:
    """Open every image (and mask) of a split.

    Args:
        data: a resolved split.
        workers: processes decoding in parallel (``<= 1``: in this process).

    Returns:
        The problems, and for semantic segmentation an array of shape (2, 256): per mask
        value, the pixels holding it and the masks containing it (else None).
    """
    function = functools.partial(check_record_files, num_classes=len(data.classes),
                                 ignore_label=data.ignore_label)
    logger.info("opening %d %s images%s with %d worker(s)", len(data.records), data.split,
                " and masks" if data.task == "sem_seg" else "", max(workers, 1))
    problems, stats = [], None
    for found, histogram in _mapped(function, data.records, workers, f"{data.split} images"):
        problems += [Problem(data.split, *p) for p in found]
        if histogram is not None:
            stats = np.zeros((2, histogram.size), dtype=np.int64) if stats is None else stats
            stats += np.stack([histogram, histogram > 0])
    return problems, stats


def _stems(directory: str) -> dict[str, str]:
    return {os.path.splitext(f)[0]: os.path.join(directory, f)
            for f in sorted(os.listdir(directory)) if not f.startswith(".")}


def unpaired_files(data: SplitData) -> list[Problem]:
    """Images without a mask and masks without an image in a semantic-segmentation set's
    directories (detectron2's ``load_sem_seg`` silently keeps only the pairs).

    Args:
        data: a resolved split; its datasets' metadata name ``image_root`` and
            ``sem_seg_root``.

    Returns:
        ``missing file`` problems, the path being the file that has no partner.
    """
    from detectron2.data import MetadataCatalog

    problems = []
    for name in data.names if data.task == "sem_seg" else []:
        meta = MetadataCatalog.get(name)
        roots = meta.get("image_root", None), meta.get("sem_seg_root", None)
        if not all(r and os.path.isdir(r) for r in roots):
            continue
        images, masks = _stems(roots[0]), _stems(roots[1])
        problems += [Problem(data.split, "missing file", masks[k],
                             f"mask without an image {k}.* in {roots[0]}")
                     for k in sorted(set(masks) - set(images))]
        problems += [Problem(data.split, "missing file", images[k],
                             f"image without a mask {k}.* in {roots[1]}")
                     for k in sorted(set(images) - set(masks))]
    return problems


# ---------------------------------------------------------------------- cross checks
def _source_or(data: SplitData, fallback: str) -> str:
    return data.source or fallback


def compare_splits(train: SplitData, test: SplitData) -> list[Problem]:
    """Class lists (and COCO category ids) that differ between the train and test sets.

    Args:
        train: the resolved train split.
        test: the resolved test split.

    Returns:
        ``category mismatch`` problems (path: the test set's source).
    """
    path = _source_or(test, ", ".join(test.names))
    if train.task != test.task:
        return [Problem("train/test", "category mismatch", path,
                        f"train is {train.task}, test is {test.task}")]
    problems = []
    if train.classes_from_metadata and test.classes_from_metadata and (
            train.classes != test.classes):
        problems.append(Problem("train/test", "category mismatch", path,
                                _first_difference(train.classes, test.classes)))
    if train.id_map and test.id_map and dict(train.id_map) != dict(test.id_map):
        problems.append(Problem("train/test", "category mismatch", path,
                                f"category id -> class index maps differ: train "
                                f"{dict(train.id_map)}, test {dict(test.id_map)}"))
    return problems


def _first_difference(train: list[str], test: list[str]) -> str:
    for k, (a, b) in enumerate(zip(train, test, strict=False)):
        if a != b:
            return f"class {k} is {a!r} in the train set but {b!r} in the test set"
    return f"the train set has {len(train)} classes, the test set {len(test)}"


def _model_problem(data: SplitData, num_classes: int, config_file: str) -> list[Problem]:
    if not (data.classes_from_metadata and num_classes and len(data.classes) != num_classes):
        return []
    return [Problem(data.split, "category mismatch", config_file,
                    f"the model predicts {num_classes} classes, the {data.split} set "
                    f"({', '.join(data.names)}) has {len(data.classes)}")]


# --------------------------------------------------------------------------- counting
def _label_indices(label) -> list[int]:
    if isinstance(label, (list, tuple, np.ndarray)):
        return [int(k) for k in np.flatnonzero(np.asarray(label, dtype=float) > 0)]
    return [int(label)] if isinstance(label, (int, np.integer)) else []


def class_counts(data: SplitData, mask_stats: np.ndarray | None = None
                 ) -> tuple[Counter, Counter]:
    """Per class index: images containing it, and annotations of it.

    Detection counts every annotation the reader keeps (crowd ones included) and the
    images holding at least one; classification counts labels (a multi-hot label counts
    once per positive class); semantic segmentation counts the masks containing a class and
    its pixels (from :func:`check_files`' ``mask_stats``; nothing without them).

    Args:
        data: a resolved split.
        mask_stats: :func:`check_files`' per-value pixel and mask counts (semantic
            segmentation).

    Returns:
        ``(images, annotations)`` counters keyed by class index (annotations: pixels for
        semantic segmentation).
    """
    images, annotations = Counter(), Counter()
    if data.task == "sem_seg":
        for k in np.flatnonzero(mask_stats[0]) if mask_stats is not None else []:
            if k != data.ignore_label:
                annotations[int(k)], images[int(k)] = int(mask_stats[0, k]), int(mask_stats[1, k])
        return images, annotations
    for record in data.records:
        if data.task == "detection":
            ids = [a.get("category_id") for a in record.get("annotations", [])]
        else:
            ids = _label_indices(record.get("label"))
        ids = [int(i) for i in ids if isinstance(i, (int, np.integer))]
        annotations.update(ids)
        images.update(set(ids))
    return images, annotations


# ----------------------------------------------------------------------------- output
def class_table(splits: dict[str, SplitData], counts: dict[str, tuple[Counter, Counter]]
                ) -> str:
    """The per-class table (one row per class index; columns per split).

    Args:
        splits: resolved splits by name.
        counts: :func:`class_counts` per split.

    Returns:
        The table text.
    """
    some = next(iter(splits.values()))
    unit = "pixels" if some.task == "sem_seg" else (
        "annotations" if some.task == "detection" else "labels")
    classes = max((s.classes for s in splits.values()), key=len)
    indices = set(range(len(classes)))
    for images, per_class in counts.values():
        indices |= set(per_class) | set(images)
    headers = ["id", "class"]
    for name in splits:
        headers += [f"{name} images", f"{name} {unit}"]
    rows = []
    for k in sorted(indices):
        row = [k, classes[k] if 0 <= k < len(classes) else "(out of range)"]
        for name in splits:
            images, per_class = counts[name]
            row += [images[k], per_class[k]]
        rows.append(row)
    return tabulate(rows, headers=headers, tablefmt="pipe")


def summary_table(splits: dict[str, SplitData], counts: dict[str, tuple[Counter, Counter]]
                  ) -> str:
    """One row per split: task, images checked, annotations, empty images."""
    rows = []
    for name, data in splits.items():
        rows.append([name, ", ".join(data.names) or data.source, data.task, len(data.records),
                     sum(counts[name][1].values()), len(data.classes), data.empty,
                     data.skipped_empty])
    return tabulate(rows, headers=["split", "dataset", "task", "images",
                                   "annotations (sem_seg: pixels)",
                                   "classes", "without annotations",
                                   "skipped (no annotations)"], tablefmt="pipe")


def problem_table(problems: Sequence[Problem], max_rows: int = 50) -> str:
    """The problems as a table, the first ``max_rows`` of them, then a count of the rest.

    Args:
        problems: all problems found.
        max_rows: rows printed (0: all).

    Returns:
        The table text, with a per-kind count.
    """
    shown = problems if max_rows <= 0 else problems[:max_rows]
    text = tabulate([[p.split, p.kind, p.path, p.detail] for p in shown],
                    headers=["split", "problem", "path", "detail"], tablefmt="pipe")
    if len(shown) < len(problems):
        text += f"\n... and {len(problems) - len(shown)} more (--max-rows 0 prints all)"
    kinds = Counter((p.split, p.kind) for p in problems)
    text += "\n" + ", ".join(f"{n} {kind} ({split})" for (split, kind), n in kinds.items())
    return text


# ------------------------------------------------------------------------------- main
def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m mona_scale.data.check",
        description="Check a config's train and test data before training: per-class "
                    "counts, every image and mask opened, problems listed with their paths. "
                    "Exit status 0: no problem; 1: problems; 2: usage error.")
    parser.add_argument("--config-file", required=True, help="a LazyConfig (configs/...py)")
    parser.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1),
                        help="processes opening images (default: min(8, CPUs)); 1: none")
    parser.add_argument("--splits", nargs="+", choices=SPLITS, default=list(SPLITS),
                        help="which of the config's sets to check (default: both)")
    parser.add_argument("--max-rows", type=int, default=50,
                        help="problem rows printed (default 50; 0: all); all are counted")
    parser.add_argument("--skip-files", action="store_true",
                        help="check annotations only; do not open images and masks")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="key=value config overrides")
    return parser


def _check_split(cfg, split: str, args) -> tuple[SplitData | None, list[Problem],
                                                 tuple[Counter, Counter]]:
    data, problems = resolve_split(cfg, split)
    if data is None:
        return None, problems, (Counter(), Counter())
    if not data.classes:
        data.classes = [str(k) for k in range(model_num_classes(cfg.model))]
    problems += check_labels(data)
    mask_stats = None
    if not args.skip_files:
        found, mask_stats = check_files(data, args.workers)
        problems += found + unpaired_files(data)
    problems += _model_problem(data, model_num_classes(cfg.model), args.config_file)
    return data, problems, class_counts(data, mask_stats)


def run_checks(cfg, args) -> list[Problem]:
    """Resolve and check the requested splits, print the tables, return the problems.

    Args:
        cfg: the loaded config.
        args: parsed command-line arguments (``splits``, ``workers``, ``max_rows``, ...).

    Returns:
        Every problem found.
    """
    splits, counts, problems = {}, {}, []
    for split in args.splits:
        data, found, counts[split] = _check_split(cfg, split, args)
        problems += found
        if data is not None:
            splits[split] = data
    if "train" in splits and "test" in splits:
        problems += compare_splits(splits["train"], splits["test"])
    counts = {name: counts[name] for name in splits}
    if splits:
        print(f"\nData of {args.config_file}\n\n{summary_table(splits, counts)}\n")
        print(f"Per class\n\n{class_table(splits, counts)}\n")
    for data in splits.values():
        if data.skipped_empty:
            print(f"{data.split}: {data.skipped_empty} images without annotations are "
                  f"skipped by the loader (filter_empty); not an error")
    if problems:
        print(f"\n{len(problems)} problem(s)\n\n{problem_table(problems, args.max_rows)}")
    else:
        print("\nNo problems found.")
    return problems


STREAM_MESSAGE = (
    "{config} reads webdataset shards: check them with `mona-shards verify <shard directory>` "
    "(every shard's sha256 and sample count; samples were validated when written), or run "
    "this check on the file-based config (the same name without _stream) before writing "
    "the shards.")


def main(argv: list[str] | None = None) -> int:
    """The command line: check a config's data; see the module docstring.

    Args:
        argv: arguments (default ``sys.argv[1:]``).

    Returns:
        The exit status: 0 clean, 1 problems found, 2 usage error.
    """
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("detectron2").setLevel(logging.WARNING)  # its class histogram: below
    import mona_scale  # noqa: F401  (detectron2 compatibility shims)
    from mona_scale.engine.config import load_config

    try:
        cfg = load_config(args.config_file, args.opts)
    except (FileNotFoundError, KeyError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    if is_stream_config(cfg):
        print(STREAM_MESSAGE.format(config=args.config_file), file=sys.stderr)
        return EXIT_USAGE
    return EXIT_PROBLEMS if run_checks(cfg, args) else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
