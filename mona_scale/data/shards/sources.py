"""Source layouts -> detectron2 dataset dicts, for the shard writer.

Each source is a :class:`Source`: a name, a task (``instances``, ``sem_seg`` or
``classification``), class names, metadata for evaluation, a description of where it came
from, and its dataset dicts with absolute ``file_name`` (and ``sem_seg_file_name``).
Detection dicts are exactly what detectron2's loaders return (``load_coco_json``,
``load_voc_instances``, ``load_sem_seg``), so shards hold what the file-based loader sees.
"""
from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets import load_coco_json
from detectron2.data.datasets.builtin_meta import ADE20K_SEM_SEG_CATEGORIES
from detectron2.data.datasets.pascal_voc import CLASS_NAMES, load_voc_instances

from .. import cls_readers
from ..ade20k import ade20k_sem_seg_dicts
from ..voc_difficult import drop_difficult as without_difficult


@dataclass
class Source:
    """Dataset dicts to write, and what the reader and evaluator need to know about them."""

    name: str
    task: str
    classes: list[str]
    dicts: list[dict]
    description: dict
    metadata: dict = field(default_factory=dict)
    root: str = ""  # file names are reported relative to this

    def relative(self, path: str) -> str:
        return os.path.relpath(path, self.root) if self.root else path


def coco_source(json_file: str, image_root: str, name: str | None = None) -> Source:
    """COCO-format instances (JSON + image directory), loaded by detectron2's
    ``load_coco_json``: category ids mapped to contiguous ids, the mapping kept in the
    manifest (``thing_dataset_id_to_contiguous_id``) for COCO evaluation."""
    temp = f"_mona_shards_{uuid.uuid4().hex}"  # load_coco_json stores the mapping here
    dicts = load_coco_json(json_file, image_root, temp)
    meta = MetadataCatalog.pop(temp)
    mapping = {str(k): v for k, v in meta.thing_dataset_id_to_contiguous_id.items()}
    return Source(name or os.path.splitext(os.path.basename(json_file))[0], "instances",
                  list(meta.thing_classes), dicts,
                  {"type": "coco", "json_file": os.path.abspath(json_file),
                   "image_root": os.path.abspath(image_root)},
                  {"thing_dataset_id_to_contiguous_id": mapping, "evaluator_type": "coco"},
                  os.path.abspath(image_root))


def voc_source(dirname: str, split: str, name: str | None = None,
               classes: list[str] | None = None, drop_difficult: bool = False) -> Source:
    """Pascal VOC (``VOC2007``/``VOC2012`` directory, ``split`` from ImageSets/Main),
    loaded by detectron2's ``load_voc_instances``; ``drop_difficult`` leaves the objects
    marked difficult out, as the file-based training set does
    (:func:`~mona_scale.data.voc_difficult.drop_difficult`)."""
    classes = list(classes or CLASS_NAMES)
    dirname = os.path.abspath(dirname)
    year = 2012 if "2012" in os.path.basename(dirname) else 2007
    dicts = load_voc_instances(dirname, split, classes)
    dicts = without_difficult(dicts, dirname) if drop_difficult else dicts
    return Source(name or f"{os.path.basename(dirname).lower()}_{split}", "instances", classes,
                  dicts, {"type": "voc", "dirname": dirname, "split": split,
                          "drop_difficult": drop_difficult},
                  {"dirname": dirname, "split": split, "year": year,
                   "evaluator_type": "pascal_voc"}, dirname)


def ade20k_source(root: str, split: str = "training", name: str | None = None) -> Source:
    """ADE20K scene parsing as distributed: ``<root>/images/<split>/*.jpg`` with the raw
    ``<root>/annotations/<split>/*.png`` (labels converted when read, see
    :mod:`mona_scale.data.ade20k`), or detectron2's ``annotations_detectron2/<split>`` when
    present (``root`` is ``ADEChallengeData2016``; ``split`` is ``training`` or
    ``validation``); records from :func:`~mona_scale.data.ade20k.ade20k_sem_seg_dicts`,
    what the file-based configs use."""
    root = os.path.abspath(root)
    dicts = ade20k_sem_seg_dicts(root, split)
    return Source(name or f"ade20k_{split}", "sem_seg", list(ADE20K_SEM_SEG_CATEGORIES), dicts,
                  {"type": "ade20k", "root": root, "split": split},
                  {"ignore_label": 255, "evaluator_type": "sem_seg"}, root)


def _classification(name: str, classes: list[str], dicts: list[dict], description: dict,
                    root: str) -> Source:
    return Source(name, "classification", classes, dicts, description,
                  {"evaluator_type": "classification"}, root)


def imagefolder_source(root: str, name: str | None = None,
                       classes: list[str] | None = None) -> Source:
    """An ImageFolder tree ``<root>/<class>/**/<image>`` read by
    :func:`mona_scale.data.cls_readers.image_folder_dicts` (what the file-based configs
    use): classes are the sorted directory names unless given, labels their indices."""
    root = os.path.abspath(root)
    dicts = cls_readers.image_folder_dicts(root, classes, check_images=False)  # the writer checks
    classes = list(classes or sorted(e.name for e in os.scandir(root) if e.is_dir()))
    return _classification(name or os.path.basename(root), classes, dicts,
                           {"type": "imagefolder", "root": root}, root)


def splitfile_source(split_file: str, root: str | None = None,
                     classes: list[str] | None = None, name: str | None = None,
                     num_classes: int = 0, multi_label: bool = False, path_format: str = "{}",
                     label_offset: int = 0, ignore_extra_columns: bool = False) -> Source:
    """A split file of ``<image path relative to root> <label> [<label> ...]`` lines
    (Flowers102, Pets, the synthetic set) read by
    :func:`mona_scale.data.cls_readers.split_file_dicts` (what the file-based configs use).

    Args:
        split_file: the list.
        root: image paths are relative to this; default the split file's directory.
        classes: class names; default the label numbers.
        name: dataset name; default the split file's base name.
        num_classes, multi_label, path_format, label_offset, ignore_extra_columns: see
            :func:`~mona_scale.data.cls_readers.split_file_dicts`.

    Returns:
        The source.
    """
    split_file = os.path.abspath(split_file)
    root = os.path.abspath(root or os.path.dirname(split_file))
    options = dict(num_classes=num_classes, multi_label=multi_label, path_format=path_format,
                   label_offset=label_offset, ignore_extra_columns=ignore_extra_columns)
    dicts = cls_readers.split_file_dicts(split_file, root, check_images=False, **options)
    if classes is None:  # multi-label files need num_classes (split_file_dicts checks)
        count = num_classes or 1 + max(d["label"] for d in dicts)
        classes = [str(i) for i in range(count)]
    return _classification(name or os.path.splitext(os.path.basename(split_file))[0],
                           list(classes), dicts, {"type": "splitfile", "split_file": split_file,
                                                  "root": root, **options}, root)


def flowers102_source(root: str, split: str = "trainval", name: str | None = None) -> Source:
    """Oxford Flowers-102 as distributed (``<root>/jpg/``, ``imagelabels.mat``,
    ``setid.mat``; ``split`` is ``train``, ``val``, ``trainval`` or ``test``) read by
    :func:`mona_scale.data.cls_readers.flowers102_dicts` (what the file-based configs use)."""
    root = os.path.abspath(root)
    dicts = cls_readers.flowers102_dicts(root, split, check_images=False)  # the writer checks
    return _classification(name or f"flowers102_{split}", [str(i) for i in range(102)], dicts,
                           {"type": "flowers102", "root": root, "split": split}, root)


def voc_cls_source(dataset: str = "voc_2007_trainval", multi_label: bool = False,
                   name: str | None = None) -> Source:
    """Pascal VOC image classification from a registered VOC detection set, labelled by
    :func:`mona_scale.data.cls_readers.voc_classification_dicts` (largest object, or
    multi-hot over every object with ``multi_label``)."""
    dicts = cls_readers.voc_classification_dicts(dataset, multi_label)
    root = MetadataCatalog.get(dataset).get("dirname", "")
    return _classification(name or f"{dataset}_cls", list(CLASS_NAMES), dicts,
                           {"type": "voc_cls", "dataset": dataset, "multi_label": multi_label},
                           root)


def catalog_source(dataset: str) -> Source:
    """A dataset registered in detectron2's ``DatasetCatalog`` (e.g. the synthetic sets).

    Classes come from the metadata's ``thing_classes``, ``stuff_classes`` or ``classes``.
    """
    dicts = DatasetCatalog.get(dataset)
    meta = MetadataCatalog.get(dataset)
    first = dicts[0] if dicts else {}  # the task, from the keys of the first dict
    task = ("sem_seg" if "sem_seg_file_name" in first
            else "classification" if "label" in first else "instances")
    classes = list(meta.get("thing_classes", None) or meta.get("stuff_classes", None)
                   or meta.get("classes", None) or [])
    metadata = {"evaluator_type": meta.get("evaluator_type", ""),
                **{k: meta.get(k) for k in ("ignore_label", "dirname", "split", "year")
                   if meta.get(k) is not None}}
    if meta.get("thing_dataset_id_to_contiguous_id"):
        metadata["thing_dataset_id_to_contiguous_id"] = {
            str(k): v for k, v in meta.thing_dataset_id_to_contiguous_id.items()}
    return Source(dataset, task, classes, dicts, {"type": "catalog", "dataset": dataset},
                  metadata, meta.get("image_root") or "")


SOURCES = {"coco": coco_source, "voc": voc_source, "ade20k": ade20k_source,
           "imagefolder": imagefolder_source, "splitfile": splitfile_source,
           "flowers102": flowers102_source, "voc-cls": voc_cls_source, "catalog": catalog_source}
