"""File checks: every image (full decode) and semantic mask of a split opened, in a process
pool, and images and masks without a partner."""
from __future__ import annotations

import functools
import logging
import os
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor

import numpy as np
from PIL import Image
from tqdm import tqdm

from .problems import DEFAULT_IGNORE_LABEL, Problem, SplitData

logger = logging.getLogger(__name__)

_EXIF_ORIENTATION = 0x0112
_ROTATED = (5, 6, 7, 8)  # EXIF orientations that swap width and height


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


def _decode_or_problem(name: str, decode, what: str, path: str, suffix: str = ""
                       ) -> tuple[object, tuple[str, str, str] | None]:
    """``(decode(name), None)``, or ``(None, problem)`` when the file is missing or does not
    decode (``what``: ``image`` / ``semantic mask``; ``path``: the name shown)."""
    if not _exists(name):
        return None, ("missing file", path, f"{what} does not exist")
    try:
        return decode(name), None
    except Exception as e:  # PIL raises many types for broken files
        kind = "undecodable " + what.split()[-1]
        return None, (kind, path, f"{type(e).__name__}: {e}{suffix}")


def _mask_problems(record: dict, size: tuple[int, int] | None, num_classes: int,
                   ignore_label: int) -> tuple[list[tuple[str, str, str]], np.ndarray | None]:
    name = record["sem_seg_file_name"]
    path = _display_path(name)
    read_as = f" (read as {name.partition('://')[0]}://)" if path != name else ""
    mask, problem = _decode_or_problem(name, _decode_mask, "semantic mask", path, read_as)
    if problem:
        return [problem], None
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
    size, problem = _decode_or_problem(path, _decode_image, "image", path)
    if problem:
        return [problem], None
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
