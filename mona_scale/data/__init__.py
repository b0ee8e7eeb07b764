"""Datasets: deterministic synthetic shapes for quickstarts and tests."""
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

__all__ = ["SHAPE_CLASSES", "SEM_SEG_CLASSES", "default_root", "make_shapes_instances",
           "make_shapes_classification", "make_shapes_semantic", "register_synthetic_dataset",
           "register_synthetic_datasets", "synthetic_dataset_dicts"]
