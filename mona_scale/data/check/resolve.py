"""A config's train or test set resolved as training does: its dataset dicts, task,
classes and empty records."""
from __future__ import annotations

import copy
import logging
from collections.abc import Sequence

from .diagnose import _load_problems
from .nodes import _registered_names, _relax, _source_path
from .problems import DEFAULT_IGNORE_LABEL, Problem, SplitData

logger = logging.getLogger(__name__)


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
