"""Classification augmentations detectron2 lacks: torchvision-style random-resized crop and
centre crop (the paper's train / test transforms: RandomResizedCrop 224 + flip; resize the
short side to 256, centre crop 224)."""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from detectron2.data import transforms as T
from PIL import Image

__all__ = ["RandomResizedCrop", "CenterCrop"]


class RandomResizedCrop(T.Augmentation):
    """Crop a random area fraction and aspect ratio, then resize to ``size`` (torchvision's
    ``RandomResizedCrop``: 10 attempts, then a centre crop clamped to the ratio range).

    Args:
        size: output (height, width) or one int for a square.
        scale: range of the crop's area as a fraction of the image.
        ratio: range of the crop's aspect ratio (width / height), sampled log-uniformly.
        interp: PIL interpolation (bicubic, as mmcls' Swin recipes).
    """

    def __init__(self, size: int | Sequence[int], scale: Sequence[float] = (0.08, 1.0),
                 ratio: Sequence[float] = (3 / 4, 4 / 3), interp: int = Image.BICUBIC):
        super().__init__()
        self.size = (size, size) if isinstance(size, int) else tuple(size)
        self.scale, self.ratio, self.interp = tuple(scale), tuple(ratio), interp

    def _crop_box(self, h: int, w: int) -> tuple[int, int, int, int]:
        """(x0, y0, width, height) of the crop."""
        area = h * w
        log_ratio = (math.log(self.ratio[0]), math.log(self.ratio[1]))
        for _ in range(10):
            target = area * np.random.uniform(*self.scale)
            aspect = math.exp(np.random.uniform(*log_ratio))
            cw, ch = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
            if 0 < cw <= w and 0 < ch <= h:
                return (int(np.random.randint(0, w - cw + 1)),
                        int(np.random.randint(0, h - ch + 1)), cw, ch)
        aspect = w / h
        if aspect < self.ratio[0]:
            cw, ch = w, round(w / self.ratio[0])
        elif aspect > self.ratio[1]:
            cw, ch = round(h * self.ratio[1]), h
        else:
            cw, ch = w, h
        return (w - cw) // 2, (h - ch) // 2, cw, ch

    def get_transform(self, image: np.ndarray) -> T.Transform:
        h, w = image.shape[:2]
        x0, y0, cw, ch = self._crop_box(h, w)
        return T.TransformList([T.CropTransform(x0, y0, cw, ch),
                                T.ResizeTransform(ch, cw, *self.size, self.interp)])


class CenterCrop(T.Augmentation):
    """Crop the centre ``size`` (clamped to the image).

    Args:
        size: (height, width) or one int for a square.
    """

    def __init__(self, size: int | Sequence[int]):
        super().__init__()
        self.size = (size, size) if isinstance(size, int) else tuple(size)

    def get_transform(self, image: np.ndarray) -> T.Transform:
        h, w = image.shape[:2]
        ch, cw = min(self.size[0], h), min(self.size[1], w)
        return T.CropTransform((w - cw) // 2, (h - ch) // 2, cw, ch)
