"""File checks: every image (full decode) and semantic mask of a split opened as training
reads them, in a process pool, and images and masks without a partner."""
from __future__ import annotations

import contextlib
import functools
import logging
import os
import sys
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor

import numpy as np
from detectron2.data import MetadataCatalog
from detectron2.data import detection_utils as utils
from detectron2.utils.file_io import PathManager
from tqdm import tqdm

from .resolve import DEFAULT_IGNORE_LABEL, Problem, SplitData

logger = logging.getLogger(__name__)
_PLAIN_SCHEMES = ("file", "http", "https", "s3", "gs")  # others convert: show the file


def _opened(name: str, what: str, read: Callable, path: str, note: str = ""
            ) -> tuple[np.ndarray | None, list[tuple[str, str, str]]]:
    """``(read(name), [])``, or ``(None, [problem])`` when the file is missing or does not
    decode (``what``: ``image`` / ``semantic mask``; ``path``: the name shown)."""
    if not (name and PathManager.isfile(name)):
        return None, [("missing file", path, f"{what} does not exist")]
    try:
        return read(name), []
    except Exception as e:  # PIL raises many types for broken files
        return None, [(f"undecodable {what.split()[-1]}", path, f"{type(e).__name__}: {e}{note}")]


def check_record_files(record: dict, num_classes: int = 0,
                       ignore_label: int = DEFAULT_IGNORE_LABEL
                       ) -> tuple[list[tuple[str, str, str]], np.ndarray | None]:
    """Open a record's image and, for semantic segmentation, its mask, with detectron2's
    ``read_image`` (through ``PathManager``, EXIF orientation applied; the mask in mode ``L``,
    so converting handlers such as ADE20K's ``reduce-zero-label://`` apply), as training does.

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
    image, problems = _opened(path, "image", utils.read_image, path)
    if image is None:
        return problems, None
    try:  # detectron2's check (a record without a size is not checked)
        utils.check_image_size(dict(record), image)
    except (utils.SizeMismatchError, KeyError) as e:  # KeyError: only one of width/height
        problems.append(("size mismatch", path, f"{type(e).__name__}: {e}"))
    name = record.get("sem_seg_file_name")
    if name is None:
        return problems, None
    scheme, sep, rest = name.partition("://")
    shown, note = ((rest, f" (read as {scheme}://)") if sep and scheme not in _PLAIN_SCHEMES
                   else (name, ""))
    mask, found = _opened(name, "semantic mask", lambda n: utils.read_image(n, "L")[..., 0],
                          shown, note)
    if mask is None:
        return problems + found, None
    if mask.shape != image.shape[:2]:
        problems.append(("size mismatch", shown, f"mask is {mask.shape[1]}x{mask.shape[0]}, "
                                                 f"image {image.shape[1]}x{image.shape[0]}"))
    histogram = np.bincount(mask.ravel(), minlength=256)
    bad = [int(v) for v in np.flatnonzero(histogram) if num_classes <= v != ignore_label]
    if num_classes and bad:
        problems.append(("label out of range", shown,
                         f"mask values {bad[:10]}{note} outside [0, {num_classes}) and not "
                         f"the ignore value {ignore_label}"))
    return problems, histogram


def check_files(data: SplitData, workers: int = 1) -> tuple[list[Problem], np.ndarray | None]:
    """Open every image (and mask) of a split; for semantic segmentation also find images
    without a mask and masks without an image in its directories (detectron2's
    ``load_sem_seg`` silently keeps only the pairs).

    Args:
        data: a resolved split.
        workers: processes decoding in parallel (``<= 1``: in this process).

    Returns:
        The problems, and for semantic segmentation an array of shape (2, 256): per mask
        value, the pixels holding it and the masks containing it (else None).
    """
    function = functools.partial(check_record_files, num_classes=len(data.classes),
                                 ignore_label=data.ignore_label)
    records, and_masks = data.records, " and masks" if data.task == "sem_seg" else ""
    logger.info("opening %d %s images%s with %d worker(s)", len(records), data.split,
                and_masks, max(workers, 1))
    pool = ProcessPoolExecutor(workers) if workers > 1 and len(records) > 1 else None
    problems, stats = [], np.zeros((2, 256), dtype=np.int64)
    with pool or contextlib.nullcontext():
        results = pool.map(function, records, chunksize=max(1, min(64, len(records) // (
            4 * workers)))) if pool else map(function, records)
        for found, histogram in tqdm(results, total=len(records), desc=f"{data.split} images",
                                     unit="img", mininterval=2.0, file=sys.stderr):
            problems += [Problem(data.split, *p) for p in found]
            stats += np.stack([histogram, histogram > 0]) if histogram is not None else 0
    return (problems + _unpaired(data), stats) if data.task == "sem_seg" else (problems, None)


def _unpaired(data: SplitData) -> list[Problem]:
    """Images without a mask, masks without an image in ``image_root`` / ``sem_seg_root``."""
    problems = []
    for meta in map(MetadataCatalog.get, data.names):
        roots = meta.get("image_root", None), meta.get("sem_seg_root", None)
        if not all(r and os.path.isdir(r) for r in roots):
            continue
        images, masks = ({os.path.splitext(f)[0]: os.path.join(root, f)
                          for f in sorted(os.listdir(root)) if not f.startswith(".")}
                         for root in roots)
        for files, other, where, without in ((masks, images, roots[0], "mask without an image"),
                                             (images, masks, roots[1], "image without a mask")):
            problems += [Problem(data.split, "missing file", files[k], f"{without} {k}.* in "
                                 f"{where}") for k in sorted(set(files) - set(other))]
    return problems
