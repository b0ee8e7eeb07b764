"""Dataset lookup that fails with a useful message when the data is not on disk."""
from __future__ import annotations

import os

from detectron2.data import DatasetCatalog, MetadataCatalog, get_detection_dataset_dicts

__all__ = ["get_dataset_dicts", "DATA_LAYOUT_HELP", "check_dataset_files"]

DATA_LAYOUT_HELP = {
    "coco": ("COCO 2017 goes under $DETECTRON2_DATASETS (default ./datasets) as\n"
             "  coco/annotations/instances_{train,val}2017.json\n"
             "  coco/{train,val}2017/*.jpg"),
    "pascal_voc": ("Pascal VOC goes under $DETECTRON2_DATASETS (default ./datasets) as\n"
                   "  VOC2007/{Annotations,ImageSets/Main,JPEGImages}/  (trainval + test)\n"
                   "  VOC2012/{Annotations,ImageSets/Main,JPEGImages}/"),
    "sem_seg": ("ADE20K goes under $DETECTRON2_DATASETS (default ./datasets) as extracted\n"
                "from ADEChallengeData2016.zip:\n"
                "  ADEChallengeData2016/images/{training,validation}/ADE_*.jpg\n"
                "  ADEChallengeData2016/annotations/{training,validation}/ADE_*.png\n"
                "  (detectron2's converted annotations_detectron2/ is used instead if present)"),
}


def check_dataset_files(name: str) -> None:
    """Raise ``FileNotFoundError`` naming the missing path and the expected layout.

    Only datasets whose metadata names files (``json_file``, ``image_root``, ``dirname``,
    ``sem_seg_root``) are checked; generated (synthetic) sets are made on first use.
    """
    if name not in DatasetCatalog.list():
        raise KeyError(f"dataset {name!r} is not registered; registered: "
                       f"{sorted(DatasetCatalog.list())[:20]} ...")
    meta = MetadataCatalog.get(name)
    if meta.get("generated", False):
        return
    for key in ("json_file", "image_root", "dirname", "sem_seg_root"):
        path = meta.get(key, None)
        if path and not os.path.exists(path):
            help_text = DATA_LAYOUT_HELP.get(meta.get("evaluator_type", ""), "")
            raise FileNotFoundError(f"dataset {name!r}: {key} {path!r} does not exist.\n"
                                    f"{help_text}")


def get_dataset_dicts(names, **kwargs) -> list[dict]:
    """detectron2's ``get_detection_dataset_dicts`` after :func:`check_dataset_files`."""
    for name in [names] if isinstance(names, str) else names:
        check_dataset_files(name)
    return get_detection_dataset_dicts(names, **kwargs)
