"""Evaluators detectron2 lacks."""
from .classification import ClassificationEvaluator, mean_average_precision, topk_accuracy

__all__ = ["ClassificationEvaluator", "topk_accuracy", "mean_average_precision"]
