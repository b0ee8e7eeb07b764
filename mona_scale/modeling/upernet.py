"""UperNet decode head and the auxiliary FCN head (mmseg 0.11's ``UPerHead`` / ``FCNHead``).

UperNet (Xiao et al. 2018) as the Mona reference configures it for ADE20K: a pyramid pooling
module (scales 1, 2, 3, 6) on the last backbone stage, lateral 1x1 + top-down FPN over all
four stages, 3x3 convs on the FPN levels, concatenation at stride 4, a 3x3 fusion conv and a
1x1 classifier after ``Dropout2d(0.1)``. Every conv is conv (no bias) + norm + ReLU. The
auxiliary head is one 3x3 conv block + classifier on stage 3.

Both heads take detectron2's feature dict and return logits at the stride of their first
input feature; the meta-architecture (:mod:`mona_scale.modeling.semantic_seg`) resizes them
and computes the loss. Norms come from detectron2's ``get_norm`` (``"SyncBN"`` in the paper
configs: plain BN in one process, synchronised under DDP).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import fvcore.nn.weight_init as weight_init
import torch
import torch.nn.functional as F
from detectron2.layers import Conv2d, ShapeSpec, get_norm
from torch import nn

__all__ = ["ConvNormReLU", "PyramidPoolingModule", "UPerHead", "FCNHead"]


class ConvNormReLU(Conv2d):
    """detectron2 ``Conv2d`` with norm and ReLU, bias-free when normed, MSRA init (mmcv's
    ``ConvModule`` defaults).

    Args:
        in_channels, out_channels: channels.
        kernel_size: square kernel; padding keeps the size.
        norm: a ``get_norm`` name (``"SyncBN"``, ``"BN"``, ``"GN"``, ``""`` for none).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 1,
                 norm: str = "SyncBN"):
        super().__init__(in_channels, out_channels, kernel_size, padding=kernel_size // 2,
                         bias=not norm, norm=get_norm(norm, out_channels), activation=F.relu)
        weight_init.c2_msra_fill(self)


def _resize(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Bilinear resize (``align_corners=False``), a no-op at the same size."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


class _SegHead(nn.Module):
    """What both heads share: input selection, ``Dropout2d`` and the 1x1 classifier
    (normal init, std 0.01, as mmseg's ``BaseDecodeHead``)."""

    def __init__(self, input_shape: Mapping[str, ShapeSpec], in_features: Sequence[str],
                 channels: int, num_classes: int, dropout: float):
        super().__init__()
        missing = [f for f in in_features if f not in input_shape]
        if missing:
            raise KeyError(f"{type(self).__name__}: backbone has no features {missing}; "
                           f"it has {sorted(input_shape)}")
        self.in_features = list(in_features)
        self.in_channels = [input_shape[f].channels for f in in_features]
        self.dropout = nn.Dropout2d(dropout)
        self.predictor = nn.Conv2d(channels, num_classes, 1)
        nn.init.normal_(self.predictor.weight, std=0.01)
        nn.init.zeros_(self.predictor.bias)

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        return self.predictor(self.dropout(x))


class PyramidPoolingModule(nn.Module):
    """Adaptive average pooling at several scales, a conv block each, upsampled back.

    Args:
        in_channels: input channels.
        channels: output channels of each branch.
        scales: output sizes of the poolings.
        norm: ``get_norm`` name.

    ``forward(x)`` returns the list of the upsampled branch outputs (not including ``x``).
    """

    def __init__(self, in_channels: int, channels: int, scales: Sequence[int] = (1, 2, 3, 6),
                 norm: str = "SyncBN"):
        super().__init__()
        self.branches = nn.ModuleList(
            nn.Sequential(nn.AdaptiveAvgPool2d(s), ConvNormReLU(in_channels, channels, 1, norm))
            for s in scales)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [_resize(branch(x), x.shape[-2:]) for branch in self.branches]


class UPerHead(_SegHead):
    """UperNet: PPM on the last feature, FPN over all of them, fused at the first's stride.

    Args:
        input_shape: the backbone's ``output_shape()``.
        num_classes: classes of the classifier.
        in_features: feature names from fine to coarse (``res2..res5`` for Swin).
        channels: width of every conv (512 in the paper).
        pool_scales: PPM scales.
        dropout: ``Dropout2d`` rate before the classifier.
        norm: ``get_norm`` name.

    ``forward(features)`` returns (N, num_classes, H/4, W/4) logits for Swin.
    """

    def __init__(self, input_shape: Mapping[str, ShapeSpec], num_classes: int,
                 in_features: Sequence[str] = ("res2", "res3", "res4", "res5"),
                 channels: int = 512, pool_scales: Sequence[int] = (1, 2, 3, 6),
                 dropout: float = 0.1, norm: str = "SyncBN"):
        super().__init__(input_shape, in_features, channels, num_classes, dropout)
        *fine, last = self.in_channels
        self.ppm = PyramidPoolingModule(last, channels, pool_scales, norm)
        self.ppm_bottleneck = ConvNormReLU(last + len(pool_scales) * channels, channels, 3,
                                           norm)
        self.lateral_convs = nn.ModuleList(ConvNormReLU(c, channels, 1, norm) for c in fine)
        self.fpn_convs = nn.ModuleList(ConvNormReLU(channels, channels, 3, norm) for _ in fine)
        self.fpn_bottleneck = ConvNormReLU(len(self.in_channels) * channels, channels, 3, norm)

    def forward(self, features: Mapping[str, torch.Tensor]) -> torch.Tensor:
        *fine, last = [features[f] for f in self.in_features]
        laterals = [conv(x) for conv, x in zip(self.lateral_convs, fine, strict=True)]
        laterals.append(self.ppm_bottleneck(torch.cat([last, *self.ppm(last)], dim=1)))
        for i in range(len(laterals) - 1, 0, -1):  # top-down
            laterals[i - 1] = laterals[i - 1] + _resize(laterals[i], laterals[i - 1].shape[-2:])
        outs = [conv(x) for conv, x in zip(self.fpn_convs, laterals, strict=False)]
        outs.append(laterals[-1])
        size = outs[0].shape[-2:]
        return self.classify(self.fpn_bottleneck(torch.cat([_resize(x, size) for x in outs],
                                                           dim=1)))


class FCNHead(_SegHead):
    """The auxiliary head: ``num_convs`` 3x3 conv blocks on one feature, then the classifier.

    Args:
        input_shape: the backbone's ``output_shape()``.
        num_classes: classes.
        in_feature: the feature (``res4``: Swin's stage 3).
        channels: conv width (256 in the reference).
        num_convs: conv blocks.
        dropout: ``Dropout2d`` rate before the classifier.
        norm: ``get_norm`` name.
    """

    def __init__(self, input_shape: Mapping[str, ShapeSpec], num_classes: int,
                 in_feature: str = "res4", channels: int = 256, num_convs: int = 1,
                 dropout: float = 0.1, norm: str = "SyncBN"):
        super().__init__(input_shape, [in_feature], channels, num_classes, dropout)
        widths = [self.in_channels[0]] + [channels] * num_convs
        self.convs = nn.Sequential(*(ConvNormReLU(a, b, 3, norm)
                                     for a, b in zip(widths[:-1], widths[1:], strict=True)))

    def forward(self, features: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return self.classify(self.convs(features[self.in_features[0]]))
