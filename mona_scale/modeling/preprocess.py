"""Input handling shared by the meta-architectures: normalise and batch detectron2 inputs."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from detectron2.layers import ShapeSpec
from detectron2.structures import ImageList

__all__ = ["normalize_images", "feature_shapes"]


def normalize_images(batched_inputs: list[dict], pixel_mean: torch.Tensor,
                     pixel_std: torch.Tensor, size_divisibility: int = 0) -> ImageList:
    """Move each ``image`` to the device of ``pixel_mean``, normalise and pad into a batch.

    Args:
        batched_inputs: detectron2 input dicts with ``image`` (CHW).
        pixel_mean, pixel_std: (C, 1, 1) tensors.
        size_divisibility: pad height and width to a multiple of this (0: none).

    Returns:
        An ``ImageList`` (zero padding right and bottom; ``image_sizes`` unpadded).
    """
    images = [(x["image"].to(pixel_mean.device) - pixel_mean) / pixel_std
              for x in batched_inputs]
    return ImageList.from_tensors(images, size_divisibility)


def feature_shapes(channels: Sequence[int], strides: Sequence[int] = (4, 8, 16, 32),
                   names: Sequence[str] = ("res2", "res3", "res4", "res5")) -> dict:
    """A backbone ``output_shape()``-like dict for head configs.

    Args:
        channels: channels of each feature (Swin-L: 192, 384, 768, 1536).
        strides: their strides.
        names: their names.

    Returns:
        ``{name: ShapeSpec(channels, stride)}``.
    """
    return {n: ShapeSpec(channels=int(c), stride=int(s))
            for n, c, s in zip(names, channels, strides, strict=True)}
