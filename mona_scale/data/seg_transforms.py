"""Semantic-segmentation augmentation detectron2 lacks: mmseg's ratio-range resize.

The paper's ADE20K recipe (mmseg 0.11 ``Resize(img_scale=(2048, 512), ratio_range=(0.5,
2.0), keep_ratio=True)``) draws a ratio r and rescales the image, keeping its aspect ratio,
to the largest size whose long side is at most int(2048 r) and short side at most
int(512 r), with OpenCV (bilinear for the image, nearest for the label map), as mmcv's
``imrescale`` does. Unlike detectron2's ``ResizeScale`` this does not depend on the image's
orientation. The crop, flip and photometric distortion of the recipe are detectron2's
(``RandomCrop_CategoryAreaConstraint``, ``RandomFlip``, PointRend's
``ColorAugSSDTransform``); the padding to the crop size is done by the model
(``EncoderDecoderSegmenter(train_pad_size=...)``, after normalisation, as mmseg pads).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from detectron2.data import transforms as T

from .cv2_resize import Cv2ResizeTransform

__all__ = ["ResizeRatioRange"]


class ResizeRatioRange(T.Augmentation):
    """Keep-ratio resize into ``scale`` times a random ratio (mmseg's ``ratio_range``).

    Args:
        scale: (long, short) edge limits at ratio 1, e.g. ``(2048, 512)``.
        ratio_range: (low, high) of the uniformly drawn ratio.
        interp: OpenCV interpolation of the image by mmcv's name (label maps use nearest).
    """

    def __init__(self, scale: Sequence[int] = (2048, 512),
                 ratio_range: Sequence[float] = (0.5, 2.0), interp: str = "bilinear"):
        super().__init__()
        self.long_edge, self.short_edge = max(scale), min(scale)
        self.ratio_range, self.interp = tuple(ratio_range), interp

    def get_transform(self, image: np.ndarray) -> T.Transform:
        h, w = image.shape[:2]
        ratio = np.random.uniform(*self.ratio_range)
        long_edge, short_edge = int(self.long_edge * ratio), int(self.short_edge * ratio)
        factor = min(long_edge / max(h, w), short_edge / min(h, w))
        return Cv2ResizeTransform(h, w, int(h * factor + 0.5), int(w * factor + 0.5),
                                  self.interp)
