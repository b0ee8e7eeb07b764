"""Classification augmentations of the paper's recipe (mmcls 0.25's, as the authors' configs
use them): RandomResizedCrop 224 + flip for training; the short side resized to 256 and a
centre crop of 224 for testing. Resizing is OpenCV bilinear, mmcls' default."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from detectron2.data import transforms as T
from torchvision import transforms as tv_transforms

from .cv2_resize import Cv2ResizeTransform

__all__ = ["RandomResizedCrop", "ResizeShortSide", "CenterCrop"]


class RandomResizedCrop(T.Augmentation):
    """Crop a random area fraction and aspect ratio, then resize to ``size``: the crop box of
    torchvision's ``RandomResizedCrop.get_params`` (10 attempts, then a centre crop clamped
    to the ratio range; mmcls' sampler too), drawn from torch's RNG, resized with OpenCV.

    Args:
        size: output (height, width) or one int for a square.
        scale: range of the crop's area as a fraction of the image.
        ratio: range of the crop's aspect ratio (width / height), sampled log-uniformly.
        interp: OpenCV interpolation by mmcv's name (``bilinear``: mmcls' default, which
            the authors' configs keep).
    """

    def __init__(self, size: int | Sequence[int], scale: Sequence[float] = (0.08, 1.0),
                 ratio: Sequence[float] = (3 / 4, 4 / 3), interp: str = "bilinear"):
        super().__init__()
        self.size = (size, size) if isinstance(size, int) else tuple(size)
        self.scale, self.ratio, self.interp = tuple(scale), tuple(ratio), interp

    def get_transform(self, image: np.ndarray) -> T.Transform:
        h, w = image.shape[:2]
        y0, x0, ch, cw = tv_transforms.RandomResizedCrop.get_params(
            torch.empty((h, w), dtype=torch.uint8), list(self.scale), list(self.ratio))
        return T.TransformList([T.CropTransform(x0, y0, cw, ch),
                                Cv2ResizeTransform(ch, cw, *self.size, self.interp)])


class ResizeShortSide(T.Augmentation):
    """Resize the short side to ``short_edge_length`` keeping the aspect ratio, as mmcls'
    ``Resize(size=(256, -1))``: the long side becomes ``int(short_edge_length * long /
    short)`` (truncated; detectron2's ``ResizeShortestEdge`` rounds) and an image whose short
    side already has that length is left as is.

    Args:
        short_edge_length: target short side (detectron2's name for it).
        interp: OpenCV interpolation by mmcv's name (``bilinear``, mmcls' default).
    """

    def __init__(self, short_edge_length: int, interp: str = "bilinear"):
        super().__init__()
        self.short_edge_length, self.interp = int(short_edge_length), interp

    def get_transform(self, image: np.ndarray) -> T.Transform:
        h, w = image.shape[:2]
        size = self.short_edge_length
        if min(h, w) == size:
            return T.NoOpTransform()
        if w < h:
            new_w, new_h = size, int(size * h / w)
        else:
            new_h, new_w = size, int(size * w / h)
        return Cv2ResizeTransform(h, w, new_h, new_w, self.interp)


class CenterCrop(T.Augmentation):
    """Crop the centre ``size`` (clamped to the image); the offset is rounded as mmcls
    rounds it (``round((h - crop) / 2)``).

    Args:
        size: (height, width) or one int for a square.
    """

    def __init__(self, size: int | Sequence[int]):
        super().__init__()
        self.size = (size, size) if isinstance(size, int) else tuple(size)

    def get_transform(self, image: np.ndarray) -> T.Transform:
        h, w = image.shape[:2]
        ch, cw = min(self.size[0], h), min(self.size[1], w)
        return T.CropTransform(int(round((w - cw) / 2)), int(round((h - ch) / 2)), cw, ch)
