"""Image resizing with OpenCV, as the mm* libraries of the paper's recipes do it.

mmcv's ``imresize`` (the default backend of mmcls', mmseg's and mmdet's resize steps) calls
``cv2.resize``; its bilinear mode does not low-pass filter when shrinking. detectron2's
``ResizeTransform`` uses Pillow, whose bilinear mode widens its filter when shrinking (an
anti-aliased result). The two give visibly different pixels for strong downscaling, so the
recipe transforms resize with :class:`Cv2ResizeTransform`; :class:`Cv2ResizeShortestEdge`
is detectron2's ``ResizeShortestEdge`` (same sizes, same arguments) resizing that way. Label
maps always use nearest.
"""
from __future__ import annotations

import sys

import cv2
import numpy as np
from detectron2.data import transforms as T

__all__ = ["CV2_INTERPOLATIONS", "Cv2ResizeTransform", "Cv2ResizeShortestEdge"]

CV2_INTERPOLATIONS = {"nearest": cv2.INTER_NEAREST, "bilinear": cv2.INTER_LINEAR,
                      "bicubic": cv2.INTER_CUBIC, "area": cv2.INTER_AREA,
                      "lanczos": cv2.INTER_LANCZOS4}


class Cv2ResizeTransform(T.Transform):
    """Resize an image from (h, w) to (new_h, new_w) with ``cv2.resize``.

    Args:
        h, w: input size.
        new_h, new_w: output size.
        interp: one of :data:`CV2_INTERPOLATIONS` (mmcv's names), used for images;
            segmentation maps use nearest.
    """

    def __init__(self, h: int, w: int, new_h: int, new_w: int, interp: str = "bilinear"):
        super().__init__()
        if interp not in CV2_INTERPOLATIONS:
            raise ValueError(f"interp={interp!r} is not one of {sorted(CV2_INTERPOLATIONS)}")
        self._set_attributes(locals())

    def apply_image(self, img: np.ndarray, interp: str | None = None) -> np.ndarray:
        if img.shape[:2] != (self.h, self.w):
            raise ValueError(f"Cv2ResizeTransform expects an image of {(self.h, self.w)}, "
                             f"got {img.shape[:2]}")
        if (self.new_h, self.new_w) == (self.h, self.w):
            return img
        code = CV2_INTERPOLATIONS[interp or self.interp]
        out = cv2.resize(img, (self.new_w, self.new_h), interpolation=code)
        if img.ndim == 3 and out.ndim == 2:  # cv2 drops a single channel
            out = out[:, :, None]
        return out

    def apply_coords(self, coords: np.ndarray) -> np.ndarray:
        coords[:, 0] = coords[:, 0] * (self.new_w * 1.0 / self.w)
        coords[:, 1] = coords[:, 1] * (self.new_h * 1.0 / self.h)
        return coords

    def apply_segmentation(self, segmentation: np.ndarray) -> np.ndarray:
        return self.apply_image(segmentation, interp="nearest")

    def inverse(self) -> T.Transform:
        return Cv2ResizeTransform(self.new_h, self.new_w, self.h, self.w, self.interp)


class Cv2ResizeShortestEdge(T.ResizeShortestEdge):
    """detectron2's ``ResizeShortestEdge`` (the same output sizes, which equal mmcv's
    keep-ratio ``imrescale`` into (max_size, short_edge_length)) resizing with OpenCV.

    Args:
        short_edge_length, max_size, sample_style: as ``ResizeShortestEdge``.
        interp: OpenCV interpolation by mmcv's name (``bilinear``).
    """

    def __init__(self, short_edge_length, max_size: int = sys.maxsize,
                 sample_style: str = "range", interp: str = "bilinear"):
        if interp not in CV2_INTERPOLATIONS:
            raise ValueError(f"interp={interp!r} is not one of {sorted(CV2_INTERPOLATIONS)}")
        super().__init__(short_edge_length, max_size, sample_style, interp)

    def get_transform(self, image: np.ndarray) -> T.Transform:
        transform = super().get_transform(image)
        if isinstance(transform, T.ResizeTransform):
            return Cv2ResizeTransform(transform.h, transform.w, transform.new_h,
                                      transform.new_w, self.interp)
        return transform
