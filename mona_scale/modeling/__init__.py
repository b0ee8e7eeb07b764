"""Meta-architectures and heads detectron2 lacks."""
from .classifier import ImageClassifier

__all__ = ["ImageClassifier"]
