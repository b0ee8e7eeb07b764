"""Why a set could not be read: the raw files re-read (COCO json, VOC xml) for precise
problems, else the reader's error itself classified."""
from __future__ import annotations

import json
import logging
import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence

from detectron2.data import MetadataCatalog

logger = logging.getLogger(__name__)

_MESSAGE_KINDS = {  # text in a reader's error -> problem kind
    "cannot be set to a different value": "category mismatch", "outside [": "label out of range",
    "out of range": "label out of range", "must lie in": "label out of range",
    "expected '<path> <label>'": "empty label", "does not exist": "missing file",
    "No such file": "missing file", "not a readable image": "undecodable image",
    "cannot identify image": "undecodable image"}


def load_problems(error: Exception, source: str, names: Sequence[str]
                  ) -> list[tuple[str, str, str]]:
    """What explains that a split could not be read.

    Args:
        error: what the split's reader raised.
        source: the file the split is read from (the path when nothing more precise is known).
        names: the registered detectron2 dataset names the split reads.

    Returns:
        ``(kind, path, detail)`` problems: precise ones from the raw files where a diagnosis
        exists (COCO json, VOC xml), else one classifying the reader's error, its path the
        first existing file the message names (quoted, or before a ``:<line>``).
    """
    found = [p for name in names for p in _diagnose(name)]
    if found:
        return found
    message = f"{type(error).__name__}: {error}".replace("\n", " ")
    kind = next((k for text, k in _MESSAGE_KINDS.items() if text in message), "unreadable dataset")
    files = re.findall(r"'([^'\n]+)'", message) + re.findall(r"(\S+?):\d+:", message)
    return [(kind, next((f for f in files if os.path.isfile(f)), source), message[:500])]


def _short(names: Sequence, count: int = 5) -> str:
    shown = ", ".join(map(str, names[:count]))
    return f"{shown}, ... ({len(names)})" if len(names) > count else f"{shown} ({len(names)})"


def _diagnose(name: str) -> list[tuple[str, str, str]]:
    """``(kind, path, detail)`` problems found in the raw files of the set ``name``."""
    meta = MetadataCatalog.get(name)
    try:
        if meta.get("json_file", None) and os.path.isfile(meta.json_file):
            return list(_coco_json(name, meta.json_file, meta.get("image_root", ""),
                                   meta.get("thing_classes", None)))
        if meta.get("dirname", None) and meta.get("split", None):
            return list(_voc(meta.dirname, meta.split, meta.get("thing_classes", [])))
    except Exception as e:  # the diagnosis itself failed: the generic problem stands
        logger.warning("could not diagnose %s: %s", name, e)
    return []


def _coco_json(name: str, json_file: str, image_root: str, registered: Sequence[str] | None
               ) -> Iterator[tuple[str, str, str]]:
    """What detectron2's reader refuses in a COCO json: categories that differ from the
    classes ``name`` is registered with, an unknown category or image id, an empty box."""
    with open(json_file) as f:
        data = json.load(f)
    in_file = [c["name"] for c in sorted(data.get("categories", []), key=lambda c: c["id"])]
    if registered and in_file != list(registered):
        yield ("category mismatch", json_file, f"its categories [{_short(in_file)}] differ from "
               f"the classes {name!r} is registered with [{_short(registered)}]")
    known = {c["id"] for c in data.get("categories", [])}
    images = {i["id"]: os.path.join(image_root, i["file_name"]) for i in data.get("images", [])}
    for ann in data.get("annotations", []):
        path = images.get(ann.get("image_id"), json_file)
        where = f"annotation {ann.get('id')} in {json_file}"
        if ann.get("category_id") not in known:
            yield ("label out of range", path, f"{where}: category_id {ann.get('category_id')} "
                   f"is not among the ids of its categories [{_short(sorted(known))}]")
        if ann.get("image_id") not in images:
            yield ("invalid annotation", json_file,
                   f"{where}: image_id {ann.get('image_id')} is not an image")
        if "bbox" in ann and len(ann["bbox"]) == 0:
            yield "invalid annotation", path, f"{where}: empty bbox"


def _voc(dirname: str, image_set: str, classes: Sequence[str]
         ) -> Iterator[tuple[str, str, str]]:
    """What detectron2's reader refuses in a VOC set: a missing image list, missing or
    malformed XML, an object class not among ``classes``, a box that is not numbers."""
    list_file = os.path.join(dirname, "ImageSets", "Main", f"{image_set}.txt")
    if not os.path.isfile(list_file):
        yield "missing file", list_file, "the image set list does not exist"
        return
    with open(list_file) as f:
        ids = [line.split()[0] for line in f if line.strip()]
    for path in (os.path.join(dirname, "Annotations", f"{i}.xml") for i in ids):
        try:
            objects = ET.parse(path).findall("object")
        except OSError:
            yield "missing file", path, "annotation file does not exist"
            continue
        except ET.ParseError as e:
            yield "undecodable annotation", path, str(e)
            continue
        for k, obj in enumerate(objects):
            if obj.findtext("name") not in classes:
                yield ("label out of range", path,
                       f"object {k}: class {obj.findtext('name')!r} is not a VOC class")
            try:
                [float(obj.find("bndbox").findtext(t)) for t in ("xmin", "ymin", "xmax", "ymax")]
            except (AttributeError, TypeError, ValueError):
                yield "invalid annotation", path, f"object {k}: bndbox is not four numbers"
