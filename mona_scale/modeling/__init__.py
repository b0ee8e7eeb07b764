"""Meta-architectures and heads detectron2 lacks, and the tuned Swin backbone builder."""
from .cascade_heads import StagewiseMaskCascadeROIHeads
from .classifier import ImageClassifier
from .fpn_blocks import P6P7OnInput
from .preprocess import feature_shapes
from .retinanet_normalizer import RetinaNetWithNormalizer
from .semantic_seg import EncoderDecoderSegmenter
from .tuned_backbone import build_swin
from .upernet import FCNHead, UPerHead

__all__ = ["build_swin", "ImageClassifier", "EncoderDecoderSegmenter", "UPerHead", "FCNHead",
           "StagewiseMaskCascadeROIHeads", "P6P7OnInput", "RetinaNetWithNormalizer",
           "feature_shapes"]
