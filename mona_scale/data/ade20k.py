"""ADE20K scene parsing (``ADEChallengeData2016``) read as distributed.

The archive's label maps ``annotations/{training,validation}/ADE_*.png`` hold 0 for "other"
(not a class) and 1..150 for the classes. Training and evaluation use 0..149 with 255
ignored (mmseg's ``reduce_zero_label``; what detectron2's ``prepare_ade20k_sem_seg.py``
writes to ``annotations_detectron2/``). The conversion happens in memory when a label map is
read: a raw record's ``sem_seg_file_name`` is ``reduce-zero-label://<path of the raw png>``,
and a ``PathManager`` handler serves that name as the converted map. detectron2's
``DatasetMapper`` and ``SemSegEvaluator`` open ground truth through ``PathManager`` (v0.6 and
main), so training and evaluation both see 0..149 / 255 with no converted files on disk and
no preparation step; a reader that bypasses ``PathManager`` fails on the name instead of
silently training on shifted labels. When ``annotations_detectron2/`` exists it is used as is.

Registered at import (paths from ``$DETECTRON2_DATASETS``, as detectron2's builtin sets):
``ade20k_train`` (``training``, 20,210 images) and ``ade20k_val`` (``validation``, 2,000).
"""
from __future__ import annotations

import io
import os

import numpy as np
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets import load_sem_seg
from detectron2.data.datasets.builtin_meta import ADE20K_SEM_SEG_CATEGORIES
from detectron2.utils.file_io import PathManager
from iopath.common.file_io import PathHandler
from PIL import Image

from .cls_readers import datasets_root
from .path_handlers import register_path_handler

__all__ = ["REDUCE_ZERO_LABEL", "ADE20K_SPLITS", "reduce_zero_label", "reduced_label_path",
           "register_handler", "ade20k_sem_seg_dicts", "register_ade20k"]

REDUCE_ZERO_LABEL = "reduce-zero-label://"
ADE20K_SPLITS = {"ade20k_train": "training", "ade20k_val": "validation"}
IGNORE_LABEL = 255


def reduce_zero_label(label: np.ndarray) -> np.ndarray:
    """Raw ADE20K labels -> training labels: 0 ("other") -> 255 (ignored), k -> k - 1.

    Args:
        label: uint8 label map with values 0..150.

    Returns:
        A new uint8 map with values 0..149 and 255.
    """
    label = np.asarray(label)
    if label.dtype != np.uint8:
        raise ValueError(f"ADE20K label maps are uint8, got {label.dtype}")
    out = label - np.uint8(1)  # uint8 arithmetic: 0 wraps to 255
    out[label == 0] = IGNORE_LABEL
    return out


def reduced_label_path(path: str) -> str:
    """The name under which ``path`` (a raw label map) reads as converted labels."""
    return path if path.startswith(REDUCE_ZERO_LABEL) else REDUCE_ZERO_LABEL + path


class ReduceZeroLabelHandler(PathHandler):
    """Serves ``reduce-zero-label://<path>`` as the PNG of :func:`reduce_zero_label` applied
    to the label map at ``<path>`` (read through ``PathManager``, so ``<path>`` may itself be
    any path detectron2 can open). Read-only."""

    def _get_supported_prefixes(self) -> list[str]:
        return [REDUCE_ZERO_LABEL]

    def _open(self, path: str, mode: str = "r", buffering: int = -1, **kwargs):
        if mode not in ("r", "rb"):
            raise OSError(f"{path}: {REDUCE_ZERO_LABEL} paths are read-only and binary")
        source = path[len(REDUCE_ZERO_LABEL):]
        with PathManager.open(source, "rb") as f:
            with Image.open(f) as image:
                if image.mode not in ("L", "P"):
                    raise ValueError(f"ADE20K label map {source!r} has mode {image.mode}; "
                                     f"expected a single-channel uint8 PNG (L)")
                label = np.array(image)
        data = io.BytesIO()
        Image.fromarray(reduce_zero_label(label)).save(data, format="PNG", compress_level=1)
        data.seek(0)
        return data

    def _exists(self, path: str, **kwargs) -> bool:
        return PathManager.exists(path[len(REDUCE_ZERO_LABEL):])

    def _isfile(self, path: str, **kwargs) -> bool:
        return PathManager.isfile(path[len(REDUCE_ZERO_LABEL):])

    def _isdir(self, path: str, **kwargs) -> bool:
        return False

    def _get_local_path(self, path: str, **kwargs) -> str:
        raise OSError(f"{path}: converted on read, it has no local path; open it with "
                      f"detectron2's PathManager (or read the raw map and apply "
                      f"mona_scale.data.ade20k.reduce_zero_label)")


def register_handler() -> None:
    """Register the ``reduce-zero-label://`` handler with ``PathManager`` (idempotent; runs
    at import, and forked DataLoader workers inherit it)."""
    register_path_handler(ReduceZeroLabelHandler())


def _layout(root: str, split: str) -> tuple[str, str, bool]:
    """(image dir, label dir, labels are raw) of ``split`` under ``root``."""
    converted = os.path.join(root, "annotations_detectron2", split)
    raw = os.path.join(root, "annotations", split)
    if os.path.isdir(converted):
        return os.path.join(root, "images", split), converted, False
    return os.path.join(root, "images", split), raw, True


def ade20k_sem_seg_dicts(root: str | None = None, split: str = "training") -> list[dict]:
    """Records of one ADE20K split, raw or converted labels.

    Args:
        root: the ``ADEChallengeData2016`` directory; default under ``$DETECTRON2_DATASETS``.
        split: ``training`` or ``validation``.

    Returns:
        detectron2's ``load_sem_seg`` records (``file_name``, ``sem_seg_file_name``): label
        maps from ``annotations_detectron2/<split>`` when it exists, otherwise from the raw
        ``annotations/<split>`` behind ``reduce-zero-label://``.

    Raises:
        FileNotFoundError: the images or both label directories are missing.
    """
    register_handler()
    root = root if root is not None else os.path.join(datasets_root(), "ADEChallengeData2016")
    image_dir, label_dir, raw = _layout(root, split)
    for path in (image_dir, label_dir):
        if not os.path.isdir(path):
            raise FileNotFoundError(
                f"ADE20K {split}: {path!r} does not exist; expected the archive's layout "
                f"{root}/images/{split}/ADE_*.jpg with {root}/annotations/{split}/ADE_*.png "
                f"(or detectron2's converted annotations_detectron2/{split}/)")
    dicts = load_sem_seg(label_dir, image_dir, gt_ext="png", image_ext="jpg")
    if raw:
        for record in dicts:
            record["sem_seg_file_name"] = reduced_label_path(record["sem_seg_file_name"])
    return dicts


def register_ade20k(root: str | None = None, names: dict[str, str] | None = None) -> None:
    """Register ADE20K splits in detectron2's catalogs (replacing earlier registrations).

    Args:
        root: the ``ADEChallengeData2016`` directory; default under ``$DETECTRON2_DATASETS``
            (read now, as detectron2's builtin datasets do).
        names: dataset name -> split; default :data:`ADE20K_SPLITS`.
    """
    root = root if root is not None else os.path.join(datasets_root(), "ADEChallengeData2016")
    for name, split in (names or ADE20K_SPLITS).items():
        if name in DatasetCatalog.list():
            DatasetCatalog.remove(name)
            MetadataCatalog.remove(name)
        DatasetCatalog.register(name, lambda r=root, s=split: ade20k_sem_seg_dicts(r, s))
        image_dir, label_dir, _ = _layout(root, split)
        MetadataCatalog.get(name).set(
            stuff_classes=list(ADE20K_SEM_SEG_CATEGORIES), image_root=image_dir,
            sem_seg_root=label_dir, evaluator_type="sem_seg", ignore_label=IGNORE_LABEL)


register_handler()
register_ade20k()
