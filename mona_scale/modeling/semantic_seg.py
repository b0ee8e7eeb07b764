"""Semantic segmentation meta-architecture: backbone -> decode head (+ auxiliary head).

The structure of mmseg 0.11's ``EncoderDecoder`` as the authors use it with UperNet: the
decode head's logits (stride 4) are resized bilinearly to the (padded) input size; training
sums ``loss_sem_seg`` (cross-entropy, ignore label 255) and, with an auxiliary head,
``loss_aux`` weighted 0.4. As in mmseg 0.11, each loss is by default the mean over ALL
pixels of the padded batch, ignored ones counting as zero (``loss_mean_over="all"``), and
training batches are padded to at least ``train_pad_size`` (mmseg's ``Pad`` to the crop
size after normalisation: image 0, label 255). Inference is whole-image at the test scale:
the logits of each image are cropped to its unpadded size and resized to its original
``height`` x ``width``, so detectron2's ``SemSegEvaluator`` compares them with the original
label map.

Inputs follow detectron2 (``DatasetMapper`` output): ``image`` (CHW), ``sem_seg`` (HxW long,
training), ``height``/``width`` (original size, inference). Outputs: a loss dict in
training, ``[{"sem_seg": (num_classes, height, width) logits}]`` in inference.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from detectron2.modeling.postprocessing import sem_seg_postprocess
from detectron2.structures import ImageList
from torch import nn

from .preprocess import normalize_images

__all__ = ["EncoderDecoderSegmenter"]


class EncoderDecoderSegmenter(nn.Module):
    """Encoder-decoder segmentation model.

    Args:
        backbone: a detectron2 ``Backbone``.
        decode_head: maps the backbone's feature dict to logits (e.g. ``UPerHead``).
        aux_head: optional auxiliary head (e.g. ``FCNHead`` on stage 3), training only.
        aux_weight: weight of the auxiliary loss (0.4 in the paper).
        ignore_value: label ignored by the loss (255).
        pixel_mean, pixel_std: input normalisation (RGB, ImageNet statistics by default).
        size_divisibility: pad batched images to a multiple of this (0: to the largest).
        loss_mean_over: ``"all"``: each loss is the mean over every pixel of the padded
            batch, ignored ones counting as zero (mmseg 0.11, the authors' version);
            ``"labelled"``: the mean over the pixels that are not ignored (later mmseg's
            ``avg_non_ignore=True``).
        train_pad_size: (height, width) every training batch is padded to at least
            (right / bottom; normalised image 0, label ``ignore_value``), as mmseg's
            ``Pad(size=crop_size)``; None: to the largest image of the batch.
    """

    def __init__(self, backbone: nn.Module, decode_head: nn.Module,
                 aux_head: nn.Module | None = None, aux_weight: float = 0.4,
                 ignore_value: int = 255, pixel_mean=(123.675, 116.28, 103.53),
                 pixel_std=(58.395, 57.12, 57.375), size_divisibility: int = 0,
                 loss_mean_over: str = "all", train_pad_size=None):
        super().__init__()
        self.backbone, self.decode_head, self.aux_head = backbone, decode_head, aux_head
        self.aux_weight, self.ignore_value = aux_weight, ignore_value
        self.size_divisibility = size_divisibility
        if loss_mean_over not in ("all", "labelled"):
            raise ValueError(f"model.loss_mean_over must be 'all' or 'labelled', got "
                             f"{loss_mean_over!r}")
        self.loss_mean_over = loss_mean_over
        if train_pad_size is not None:
            train_pad_size = tuple(int(v) for v in train_pad_size)
            if len(train_pad_size) != 2:
                raise ValueError(f"model.train_pad_size must be (height, width), got "
                                 f"{train_pad_size}")
        self.train_pad_size = train_pad_size
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean).view(-1, 1, 1), False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std).view(-1, 1, 1), False)
        shapes = backbone.output_shape()
        for name, head in (("decode_head", decode_head), ("aux_head", aux_head)):
            for feature, channels in zip(getattr(head, "in_features", ()),
                                         getattr(head, "in_channels", ()), strict=True):
                have = shapes[feature].channels if feature in shapes else None
                if have != channels:
                    raise ValueError(f"model.{name}: feature {feature!r} has {have} channels "
                                     f"in the backbone, the head expects {channels}; set "
                                     f"model.{name}.input_shape to the backbone's")

    @property
    def device(self) -> torch.device:
        return self.pixel_mean.device

    def forward(self, batched_inputs: list[dict]):
        images = normalize_images(batched_inputs, self.pixel_mean, self.pixel_std,
                                  self.size_divisibility)
        if self.training and self.train_pad_size is not None:
            images = self._pad_to(images, self.train_pad_size)
        features = self.backbone(images.tensor)
        logits = self._upsample(self.decode_head(features), images.tensor.shape[-2:])
        if self.training:
            return self.losses(logits, features, batched_inputs, images)
        return [{"sem_seg": sem_seg_postprocess(r, size, x.get("height", size[0]),
                                                x.get("width", size[1]))}
                for r, x, size in zip(logits, batched_inputs, images.image_sizes, strict=True)]

    def losses(self, logits: torch.Tensor, features: dict, batched_inputs: list[dict],
               images: ImageList) -> dict[str, torch.Tensor]:
        """``loss_sem_seg`` and (with an auxiliary head) the weighted ``loss_aux``.

        Args:
            logits: decode-head logits at the padded input size.
            features: the backbone's features (for the auxiliary head).
            batched_inputs: inputs with ``sem_seg`` label maps.
            images: the batched images (their padded size).

        Returns:
            The loss dict.
        """
        targets = torch.full((len(batched_inputs), *images.tensor.shape[-2:]), self.ignore_value,
                             dtype=torch.long, device=self.device)
        for target, x in zip(targets, batched_inputs, strict=True):
            label = x["sem_seg"].to(self.device)
            target[:label.shape[0], :label.shape[1]] = label
        losses = {"loss_sem_seg": self._cross_entropy(logits, targets)}
        if self.aux_head is not None:
            aux = self._upsample(self.aux_head(features), images.tensor.shape[-2:])
            losses["loss_aux"] = self.aux_weight * self._cross_entropy(aux, targets)
        return losses

    def _cross_entropy(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Cross-entropy averaged as ``loss_mean_over`` says (0, not NaN, when every pixel
        is ignored)."""
        total = F.cross_entropy(logits, targets, ignore_index=self.ignore_value,
                                reduction="sum")
        if self.loss_mean_over == "all":
            return total / targets.numel()
        return total / (targets != self.ignore_value).sum().clamp(min=1)

    @staticmethod
    def _pad_to(images: ImageList, size) -> ImageList:
        """``images`` with its tensor zero-padded right / bottom to at least ``size``."""
        height, width = images.tensor.shape[-2:]
        pad_h, pad_w = max(size[0] - height, 0), max(size[1] - width, 0)
        if pad_h == 0 and pad_w == 0:
            return images
        return ImageList(F.pad(images.tensor, (0, pad_w, 0, pad_h), value=0.0),
                         images.image_sizes)

    @staticmethod
    def _upsample(logits: torch.Tensor, size) -> torch.Tensor:
        return F.interpolate(logits, size=tuple(size), mode="bilinear", align_corners=False)
