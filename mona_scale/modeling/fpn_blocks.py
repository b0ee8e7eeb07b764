"""FPN top blocks: the extra pyramid levels above the backbone's last stage.

mmdet 2.x's RetinaNet FPN (``add_extra_convs="on_input"``, ``relu_before_extra_convs=False``,
the paper's VOC recipe) computes P6 = conv3x3/2(C5) and P7 = conv3x3/2(P6) with no
activation in between. detectron2's ``LastLevelP6P7`` applies a ReLU to P6 before P7's conv;
:class:`P6P7OnInput` is the mmdet variant for detectron2's ``FPN(top_block=...)``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["P6P7OnInput"]


class P6P7OnInput(nn.Module):
    """P6 and P7 from the backbone's last feature, as mmdet's RetinaNet FPN builds them.

    Args:
        in_channels: channels of the input feature (C5's for ``in_feature="res5"``).
        out_channels: FPN width (256).
        in_feature: the feature the FPN hands to this block (``res5``: on the backbone's
            output, mmdet's ``"on_input"``; ``p5``: on the FPN's output).
        relu_before_p7: apply a ReLU to P6 before P7's conv (detectron2's
            ``LastLevelP6P7``); False is mmdet's default and the authors' setting.

    Both convs are 3x3, stride 2, padding 1, with bias; Xavier-uniform weights and zero
    bias, mmdet's FPN initialisation.
    """

    def __init__(self, in_channels: int, out_channels: int, in_feature: str = "res5",
                 relu_before_p7: bool = False):
        super().__init__()
        self.num_levels = 2
        self.in_feature = in_feature
        self.relu_before_p7 = relu_before_p7
        self.p6 = nn.Conv2d(in_channels, out_channels, 3, 2, 1)
        self.p7 = nn.Conv2d(out_channels, out_channels, 3, 2, 1)
        for conv in (self.p6, self.p7):
            nn.init.xavier_uniform_(conv.weight)
            nn.init.zeros_(conv.bias)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Returns ``[p6, p7]`` for the input feature ``x``."""
        p6 = self.p6(x)
        p7 = self.p7(F.relu(p6) if self.relu_before_p7 else p6)
        return [p6, p7]
