"""One sample in a shard: detectron2 dataset dict <-> tar members, and validation.

Members of sample ``<key>``:

* ``<key>.json``: the dataset dict without its file paths (boxes, category ids already
  mapped to contiguous ids, polygons or RLE, ``height``/``width``, ``image_id``, ``label``,
  ...), plus private fields: ``_image`` (the image member's extension), ``_source`` (the
  image's path in the source layout) and ``_sem_seg`` (``seg.png`` when there is a mask).
* ``<key>.<ext>``: the original image bytes (not re-encoded), ``ext`` from its file name.
* ``<key>.seg.png``: the semantic-segmentation mask (original bytes), if any.
"""
from __future__ import annotations

import io
import json
import math
import os
from dataclasses import dataclass

from detectron2.structures import BoxMode
from detectron2.utils.file_io import PathManager
from PIL import Image

from .memfs import PREFIX

SEM_SEG_EXT = "seg.png"
_PRIVATE = ("_image", "_source", "_sem_seg", "_size")
_BOX_MODES = frozenset(BoxMode)


class InvalidSample(ValueError):
    """A sample whose members or annotations fail validation."""


@dataclass
class RawSample:
    """A sample as read from a shard: its record (the dataset dict without file paths)
    and member bytes, before any image is decoded."""

    shard: str
    key: str
    record: dict
    files: dict[str, bytes]

    def size(self) -> tuple[int, int] | None:
        """``(height, width)`` from the record, without decoding the image."""
        record = self.record
        size = ((record["height"], record["width"]) if "height" in record and "width" in record
                else record.get("_size"))
        return tuple(size) if size else None

    def dataset_dict(self) -> tuple[dict, dict[str, bytes]]:
        """The detectron2 dataset dict (``file_name`` etc. as ``shard://`` paths) and the
        ``shard://`` path -> bytes map that must be served while it is read."""
        record = {k: v for k, v in self.record.items() if k not in _PRIVATE}
        served, base = {}, f"{PREFIX}{self.shard}/{self.key}."
        for field, member in (("file_name", self.record["_image"]),
                              ("sem_seg_file_name", self.record.get("_sem_seg") and SEM_SEG_EXT)):
            if member:
                record[field], served[base + member] = base + member, self.files[member]
        for ann in record.get("annotations", ()):
            if "bbox_mode" in ann:
                ann["bbox_mode"] = BoxMode(ann["bbox_mode"])
        return record, served


def _json_default(value):
    """What ``json`` cannot write itself: RLE counts (bytes), numpy / torch scalars."""
    return value.decode("ascii") if isinstance(value, bytes) else value.item()


def _read(path: str) -> bytes:
    """A source file's bytes (``PathManager``: also the ``reduce-zero-label://`` views)."""
    with PathManager.open(path, "rb") as f:
        return f.read()


def encode_sample(record: dict, source: str, num_classes: int | None) -> dict[str, bytes]:
    """Read and validate one source sample's files and return its tar members.

    Args:
        record: the dataset dict (absolute ``file_name``, optional ``sem_seg_file_name``,
            which are not stored in the JSON member).
        source: the image's path in the source layout (for error messages).
        num_classes: for validating category ids and labels.

    Returns:
        Member extension -> bytes (``json``, the image's extension, ``seg.png``).

    Raises:
        InvalidSample: annotations failing :func:`validate_record`, an undecodable image
            or mask, or sizes that disagree (``OSError`` for unreadable files).
    """
    validate_record(record, num_classes)
    meta = {k: v for k, v in record.items() if k not in ("file_name", "sem_seg_file_name")}
    ext = os.path.splitext(record["file_name"])[1].lstrip(".").lower() or "img"
    members = {ext: _read(record["file_name"])}
    known = (record["height"], record["width"]) if "height" in record else None
    size = check_image(members[ext], known, "image")
    meta.update(_image=ext, _source=source, **({} if known else {"_size": list(size)}))
    if record.get("sem_seg_file_name"):
        members[SEM_SEG_EXT] = _read(record["sem_seg_file_name"])
        check_image(members[SEM_SEG_EXT], size, "semantic mask")
        meta["_sem_seg"] = SEM_SEG_EXT
    members["json"] = json.dumps(meta, sort_keys=True, default=_json_default).encode()
    return members


def decode_sample(shard: str, key: str, files: dict[str, bytes],
                  num_classes: int | None) -> RawSample:
    """Parse and validate a sample read from a shard (images are not decoded).

    Raises:
        InvalidSample: missing members, bad JSON, or annotations failing
            :func:`validate_record`.
    """
    if "json" not in files:
        raise InvalidSample(f"no {key}.json member (members: {sorted(files)})")
    try:
        record = json.loads(files["json"])
    except ValueError as e:
        raise InvalidSample(f"{key}.json is not valid JSON: {e}") from e
    if not isinstance(record, dict) or record.get("_image") not in files:
        raise InvalidSample(f"{key}.json names no image member present in the sample "
                            f"(members: {sorted(files)})")
    if record.get("_sem_seg") and SEM_SEG_EXT not in files:
        raise InvalidSample(f"{key}.{SEM_SEG_EXT} is missing")
    try:
        validate_record(record, num_classes)
    except InvalidSample:
        raise
    except (TypeError, ValueError, KeyError, AttributeError) as e:  # malformed structure
        raise InvalidSample(f"{key}.json is malformed: {type(e).__name__}: {e}") from e
    return RawSample(shard, key, record, files)


def _finite(values, count: int | None = None) -> bool:
    return (isinstance(values, (list, tuple)) and (count is None or len(values) == count)
            and all(isinstance(v, (int, float)) and math.isfinite(v) for v in values))


def _check_class(what: str, value, num_classes: int | None) -> None:
    if not isinstance(value, int) or value < 0 or (num_classes is not None
                                                   and value >= num_classes):
        raise InvalidSample(f"{what} {value!r} outside [0, {num_classes})")


def _check_annotation(ann: dict, height, width, num_classes: int | None) -> None:
    if not isinstance(ann, dict):
        raise InvalidSample(f"annotation is not a dict: {ann!r}")
    _check_class("category_id", ann.get("category_id"), num_classes)
    mode = ann.get("bbox_mode", BoxMode.XYWH_ABS)
    if mode not in _BOX_MODES:
        raise InvalidSample(f"bbox_mode {mode!r} is not a detectron2 BoxMode")
    bbox, count = ann.get("bbox"), 5 if mode == BoxMode.XYWHA_ABS else 4
    if not _finite(bbox, count):
        raise InvalidSample(f"bbox {bbox!r} is not {count} finite numbers")
    if mode in (BoxMode.XYXY_ABS, BoxMode.XYWH_ABS):  # (BoxMode.convert is slow per box)
        x0, y0, x1, y1 = bbox
        if mode == BoxMode.XYWH_ABS:
            x1, y1 = x0 + x1, y0 + y1
        if x1 < x0 or y1 < y0:
            raise InvalidSample(f"bbox {bbox!r} has negative size")
        if height and width and (x1 <= 0 or y1 <= 0 or x0 >= width or y0 >= height):
            raise InvalidSample(f"bbox {bbox!r} lies outside the {width}x{height} image")
    segm = ann.get("segmentation")
    if isinstance(segm, list):
        if not segm or not all(_finite(p) and len(p) >= 6 and len(p) % 2 == 0 for p in segm):
            raise InvalidSample("segmentation polygons need >= 3 finite (x, y) points each")
    elif isinstance(segm, dict):
        if height and list(segm.get("size", ())) != [height, width]:
            raise InvalidSample(f"RLE size {segm.get('size')} != image size "
                                f"{[height, width]}")
        if "counts" not in segm:
            raise InvalidSample("RLE without counts")
    elif segm is not None:
        raise InvalidSample(f"segmentation of type {type(segm).__name__}")


def validate_record(record: dict, num_classes: int | None) -> None:
    """Check a sample's annotations (sizes, boxes, category ids, polygons/RLE, labels).

    Args:
        record: a dataset dict.
        num_classes: for checking category ids and labels (None: not checked above).

    Raises:
        InvalidSample: naming the first problem found.
    """
    height, width = record.get("height"), record.get("width")
    for name, value in (("height", height), ("width", width)):
        if value is not None and (not isinstance(value, int) or value <= 0):
            raise InvalidSample(f"{name} {value!r} is not a positive integer")
    if not isinstance(record.get("annotations", []), list):
        raise InvalidSample("annotations is not a list")
    for ann in record.get("annotations", []):
        _check_annotation(ann, height, width, num_classes)
    label = record.get("label", 0)
    if isinstance(label, list) and not _finite(label, num_classes):  # multi-hot
        raise InvalidSample(f"multi-hot label is not {num_classes} finite numbers")
    if not isinstance(label, list):
        _check_class("label", label, num_classes)


def check_image(data: bytes, size: tuple[int, int] | None = None,
                what: str = "image") -> tuple[int, int]:
    """Decode ``data`` fully; return its ``(height, width)``.

    Raises:
        InvalidSample: undecodable, or its size differs from ``size`` (height, width).
    """
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            decoded = (image.height, image.width)
    except Exception as e:  # PIL raises many types for broken files
        raise InvalidSample(f"{what} cannot be decoded: {type(e).__name__}: {e}") from e
    if size is not None and tuple(size) != decoded:
        raise InvalidSample(f"{what} is {decoded[1]}x{decoded[0]} but the annotations say "
                            f"{size[1]}x{size[0]}")
    return decoded
