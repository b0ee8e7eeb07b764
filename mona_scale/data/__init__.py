"""Datasets: readers of the public sets as distributed (ADE20K registered here as
``ade20k_train`` / ``ade20k_val``; COCO and VOC are detectron2's builtin sets), and
deterministic synthetic shapes for quickstarts and tests."""
from .ade20k import ade20k_sem_seg_dicts, reduce_zero_label, register_ade20k
from .cls_readers import flowers102_dicts, split_file_dicts, voc_classification_dicts
from .synthetic import (
    SEM_SEG_CLASSES,
    SHAPE_CLASSES,
    default_root,
    make_shapes_classification,
    make_shapes_instances,
    make_shapes_semantic,
    register_synthetic_dataset,
    register_synthetic_datasets,
    synthetic_dataset_dicts,
)

__all__ = ["ade20k_sem_seg_dicts", "reduce_zero_label", "register_ade20k", "flowers102_dicts",
           "split_file_dicts", "voc_classification_dicts", "SHAPE_CLASSES", "SEM_SEG_CLASSES",
           "default_root", "make_shapes_instances", "make_shapes_classification",
           "make_shapes_semantic", "register_synthetic_dataset", "register_synthetic_datasets",
           "synthetic_dataset_dicts"]
