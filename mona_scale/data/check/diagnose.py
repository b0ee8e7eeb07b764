"""Why a set could not be read: the raw files re-read (COCO json, VOC xml) for precise
problems, else the reader's error itself classified."""
from __future__ import annotations

import json
import logging
import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence

from .problems import Problem

logger = logging.getLogger(__name__)


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
