"""Evaluators detectron2 lacks, and COCO AP on a C++ COCOeval."""
from .classification import ClassificationEvaluator, mean_average_precision, topk_accuracy
from .coco import FastCOCOEvaluator, coco_backend

__all__ = ["ClassificationEvaluator", "topk_accuracy", "mean_average_precision",
           "FastCOCOEvaluator", "coco_backend"]
