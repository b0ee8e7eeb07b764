"""What a config's nodes say about its data: streaming or not, the reader's parameters,
the registered dataset names and source files a dataset node reads, the model's number of
classes."""
from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Sequence

from .problems import SPLITS


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
