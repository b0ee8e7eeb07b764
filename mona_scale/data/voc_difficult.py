"""Pascal VOC training sets without the objects marked ``difficult``, as mmdet trains.

detectron2's builtin VOC loader keeps every object, ``difficult`` ones included. mmdet's
``VOCDataset`` (the paper's VOC detection recipe) moves them to an ignore list that its
RetinaNet never reads, so they are neither positives nor ignored regions: anchors on them
are background. It keeps every image that has at least one object, so an image whose
objects are all difficult trains as background only. :func:`voc_dicts_without_difficult`
does the same with detectron2's own loader and the XML files next to it. Evaluation is
unaffected: detectron2's ``PascalVOCDetectionEvaluator`` reads the XML files itself and
treats difficult objects as VOC's devkit does (neither hits nor misses).
"""
from __future__ import annotations

import os
import xml.etree.ElementTree as ET

from detectron2.data import MetadataCatalog
from detectron2.utils.file_io import PathManager

from .catalog import get_dataset_dicts

__all__ = ["difficult_flags", "drop_difficult", "voc_dicts_without_difficult"]


def difficult_flags(annotation_file: str) -> list[bool]:
    """The ``<difficult>`` flag of every ``<object>`` of a VOC XML file, in file order
    (a missing flag counts as 0, as in mmdet).

    Args:
        annotation_file: path of ``Annotations/<id>.xml``.

    Returns:
        One bool per object.
    """
    with PathManager.open(annotation_file) as f:
        root = ET.parse(f).getroot()
    flags = []
    for obj in root.findall("object"):
        node = obj.find("difficult")
        flags.append(node is not None and int(node.text) == 1)
    return flags


def drop_difficult(records: list[dict], dirname: str) -> list[dict]:
    """Remove the difficult objects from records of detectron2's ``load_voc_instances``.

    Args:
        records: dataset dicts of one VOC directory (``image_id`` = file id, one annotation
            per ``<object>`` in file order).
        dirname: that directory (``VOC2007``), holding ``Annotations/<image_id>.xml``.

    Returns:
        New dicts: every image with at least one object (mmdet's empty-image filter), each
        keeping only its non-difficult objects, possibly none.

    Raises:
        ValueError: naming the XML file whose objects do not line up with the record's.
    """
    result = []
    for record in records:
        annotations = record.get("annotations", [])
        if not annotations:
            continue
        xml = os.path.join(dirname, "Annotations", f"{record['image_id']}.xml")
        flags = difficult_flags(xml)
        if len(flags) != len(annotations):
            raise ValueError(f"{xml}: {len(flags)} <object> entries, but the record of "
                             f"{record['image_id']!r} has {len(annotations)} annotations")
        record = dict(record)
        record["annotations"] = [a for a, hard in zip(annotations, flags, strict=True)
                                 if not hard]
        result.append(record)
    return result


def voc_dicts_without_difficult(names: str | list[str]) -> list[dict]:
    """Records of detectron2-registered VOC sets with the difficult objects removed.

    Args:
        names: registered VOC dataset name(s), e.g. ``["voc_2007_trainval",
            "voc_2012_trainval"]`` (their metadata's ``dirname`` holds ``Annotations/``).

    Returns:
        :func:`drop_difficult` of each set's records, concatenated in order.
    """
    names = [names] if isinstance(names, str) else list(names)
    result = []
    for name in names:
        dirname = MetadataCatalog.get(name).get("dirname", None)
        if not dirname:
            raise KeyError(f"dataset {name!r} has no 'dirname' metadata: not a VOC set")
        result += drop_difficult(get_dataset_dicts(name, filter_empty=False), dirname)
    return result
