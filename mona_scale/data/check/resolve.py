"""A config's train or test set resolved as training does into a :class:`SplitData` (its
dataset dicts, task, classes, empty records) that the checks read; the :class:`Problem` they
report; what else the config says about its data (streaming or not, the model's classes)."""
from __future__ import annotations

import copy
import inspect
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

from mona_scale.data.catalog import get_dataset_dicts
from mona_scale.data.cls_readers import datasets_root

from detectron2.config import instantiate
from detectron2.data import DatasetCatalog, MetadataCatalog, get_detection_dataset_dicts
from detectron2.utils.registry import locate

from .diagnose import load_problems

logger = logging.getLogger(__name__)
SPLITS = ("train", "test")
DEFAULT_IGNORE_LABEL = 255


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


_CLASS_KEYS = {"detection": ("thing_classes",), "sem_seg": ("stuff_classes",),
               "classification": ("classes", "thing_classes", "stuff_classes")}


def is_stream_config(cfg) -> bool:
    """Whether the config's loaders read webdataset shards (a ``*_stream.py`` config).

    Args:
        cfg: a loaded LazyConfig.

    Returns:
        True if a train or test loader (or its dataset) is a shard stream.
    """
    nodes = [cfg.dataloader.get(split) for split in SPLITS]
    nodes += [node.get("dataset") for node in nodes if node is not None]
    targets = [node.get("_target_") for node in nodes if hasattr(node, "get")]
    names = [getattr(t, "__name__", str(t)) for t in targets if t is not None]
    return any("stream" in name or "shard" in name for name in names)


def model_num_classes(model_cfg) -> int:
    """The first integer ``num_classes`` in the model config, breadth first (the
    classifier's, ``roi_heads.num_classes``, ``decode_head.num_classes``, ...).

    Args:
        model_cfg: ``cfg.model``.

    Returns:
        The number, or 0 when the model names none.
    """
    queue = [model_cfg]
    for node in queue:  # the queue grows while it is walked: breadth first
        if not hasattr(node, "items"):
            continue
        value = node.get("num_classes", None)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
        queue += [node.get(key) for key in node.keys() if key != "num_classes"]
    return 0


def _relax(node) -> bool:
    """Turn off the reader's image checks (``check_images``: this check opens every image
    itself and reports all broken ones) and its ``filter_empty``; return whether the loader
    drops records without annotations. ``get_dataset_dicts`` takes the parameters of
    detectron2's ``get_detection_dataset_dicts``, to which it forwards its ``**kwargs``."""
    try:
        target = node.get("_target_")
        function = locate(target) if isinstance(target, str) else target
        function = get_detection_dataset_dicts if function is get_dataset_dicts else function
        params = inspect.signature(function).parameters
    except Exception:  # an unknown target fails later, at instantiation, with its own error
        return False
    if "check_images" in params:
        node.check_images = False
    if "filter_empty" not in params:
        return False
    default = params["filter_empty"].default
    filter_empty = bool(node.get("filter_empty", default is not inspect.Parameter.empty
                                 and default))
    node.filter_empty = False
    return filter_empty


def _registered_names(node) -> list[str]:
    """The detectron2 dataset names a dataset node reads (``names``, ``dataset_name``,
    ``name``), those registered in the ``DatasetCatalog``."""
    values = [node.get(key) for key in ("names", "dataset_name", "name")]
    found = [v for value in values for v in ([value] if isinstance(value, str) else value or [])]
    return [n for n in found if isinstance(n, str) and n in DatasetCatalog.list()]


def _source_path(node, names: Sequence[str]) -> str:
    """The file or directory a split is read from, for messages."""
    for key in ("split_file", "json_file", "root", "image_root"):
        if isinstance(node.get(key), str):
            return os.path.join(datasets_root(), node.get(key))  # an absolute path stays
    return str(_metadata(names, "json_file", "dirname", "sem_seg_root", "split_file",
                        "image_root", default=""))


def _metadata(names: Sequence[str], *keys: str, default=None):
    """The first of ``keys`` set (not None, not empty) in the metadata of ``names``."""
    for name in names:
        for key in keys:
            value = MetadataCatalog.get(name).get(key, None)
            if value is not None and (value or not hasattr(value, "__len__")):
                return value
    return default


def _task(records: list[dict]) -> str:
    """The task of the first record (of 100) with a mask, a label or annotations."""
    keys = [k for r in records[:100] for k in ("sem_seg_file_name", "label", "annotations")
            if k in r]
    tasks = {"sem_seg_file_name": "sem_seg", "label": "classification"}
    return tasks.get(keys[0], "detection") if keys else ("detection" if records else
                                                         "classification")


def resolve_split(cfg, split: str) -> tuple[SplitData | None, list[Problem]]:
    """Instantiate ``cfg.dataloader.<split>.dataset`` as training would.

    Args:
        cfg: the loaded config (not modified).
        split: ``train`` or ``test``.

    Returns:
        The split's data (None when it cannot be read) and the problems met reading it.
    """
    loader = cfg.dataloader.get(split)
    if loader is None or loader.get("dataset") is None:
        logger.warning("no dataloader.%s.dataset in the config: %s set not checked", split, split)
        return None, []
    node = copy.deepcopy(loader.dataset)
    spec = node if hasattr(node, "get") else {}  # not a node: records given in the config
    filter_empty, names = _relax(spec), _registered_names(spec)
    source = _source_path(spec, names)
    logger.info("reading the %s set (%s)", split, ", ".join(names) or source or "config node")
    try:
        records = list(instantiate(node))
    except Exception as e:  # any reader error is a problem to report, not a crash
        return None, [Problem(split, *p) for p in load_problems(e, source, names)]
    names = names or _registered_names(spec)  # readers may register their sets
    task = _task(records)
    classes = _metadata(names, *_CLASS_KEYS[task], default=[])
    data = SplitData(split, records, task, names, [str(c) for c in classes], bool(classes),
                     int(_metadata(names, "ignore_label", default=DEFAULT_IGNORE_LABEL)), source,
                     id_map=_metadata(names, "thing_dataset_id_to_contiguous_id"))
    if task == "detection":  # detectron2's filter_empty: at least one non-crowd annotation
        kept = [r for r in records
                if any(a.get("iscrowd", 0) == 0 for a in r.get("annotations", []))]
        if filter_empty:
            data.skipped_empty, data.records = len(records) - len(kept), kept
        else:
            data.empty = len(records) - len(kept)
    return data, []
