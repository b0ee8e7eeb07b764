"""Image classification meta-architecture: backbone stage -> global average pool -> linear.

Inputs follow detectron2's convention: a list of dicts with ``image`` (CHW uint8 tensor in
``input_format``) and, in training, ``label`` (int; or a multi-hot list in multi-label
mode). Training returns ``{"loss_cls": ...}``; inference returns one dict per image with
``logits`` and ``pred_class``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .preprocess import normalize_images

__all__ = ["ImageClassifier"]


class ImageClassifier(nn.Module):
    """Backbone + pooled linear head.

    Args:
        backbone: a detectron2 ``Backbone``.
        num_classes: output classes.
        in_feature: backbone output to pool (``res5``: Swin's last stage).
        pixel_mean, pixel_std: input normalisation (in ``input_format`` channel order).
        multi_label: binary cross-entropy over multi-hot labels instead of softmax.
        dropout: dropout before the linear head.
    """

    def __init__(self, backbone: nn.Module, num_classes: int, in_feature: str = "res5",
                 pixel_mean=(123.675, 116.28, 103.53), pixel_std=(58.395, 57.12, 57.375),
                 multi_label: bool = False, dropout: float = 0.0):
        super().__init__()
        self.backbone, self.in_feature, self.multi_label = backbone, in_feature, multi_label
        channels = backbone.output_shape()[in_feature].channels
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(channels, num_classes)
        # mmcls' LinearClsHead (the authors' head): normal(0, 0.01) weight, zero bias
        nn.init.normal_(self.head.weight, std=0.01)
        nn.init.zeros_(self.head.bias)
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean).view(-1, 1, 1), False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std).view(-1, 1, 1), False)

    @property
    def device(self) -> torch.device:
        return self.pixel_mean.device

    def logits(self, batched_inputs: list[dict]) -> torch.Tensor:
        """(N, num_classes) logits for a batch of input dicts."""
        images = normalize_images(batched_inputs, self.pixel_mean, self.pixel_std).tensor
        features = self.backbone(images)[self.in_feature]
        return self.head(self.dropout(features.mean(dim=(2, 3))))

    def forward(self, batched_inputs: list[dict]):
        logits = self.logits(batched_inputs)
        if not self.training:
            return [{"logits": row, "pred_class": int(row.argmax())} for row in logits]
        if self.multi_label:
            target = torch.stack([torch.as_tensor(x["label"], dtype=torch.float32)
                                  for x in batched_inputs]).to(self.device)
            return {"loss_cls": F.binary_cross_entropy_with_logits(logits, target)}
        target = torch.tensor([int(x["label"]) for x in batched_inputs], device=self.device)
        return {"loss_cls": F.cross_entropy(logits, target)}
