"""Meta-architectures and heads detectron2 lacks."""
from .cascade_heads import StagewiseMaskCascadeROIHeads
from .classifier import ImageClassifier
from .preprocess import feature_shapes, normalize_images
from .semantic_seg import SemanticSegmentor
from .upernet import FCNHead, PyramidPoolingModule, UPerHead

__all__ = ["ImageClassifier", "SemanticSegmentor", "UPerHead", "FCNHead",
           "PyramidPoolingModule", "StagewiseMaskCascadeROIHeads", "feature_shapes",
           "normalize_images"]
