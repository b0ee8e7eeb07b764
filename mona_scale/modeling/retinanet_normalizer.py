"""RetinaNet whose loss normaliser is a choice: detectron2's running average or mmdet's
per-batch count of positive anchors.

detectron2's ``RetinaNet`` divides its focal and box losses by an exponential moving average
(momentum 0.9, starting at 100) of the number of positive anchors, to steady the loss when a
GPU holds one image. mmdet 2.x (the paper's VOC recipe) divides by the number of positive
anchors of the current batch. Neither detectron2 v0.6 nor its main branch exposes the
momentum, so :class:`RetinaNetWithNormalizer` adds it as a constructor argument.
"""
from __future__ import annotations

from detectron2.modeling.meta_arch import RetinaNet

__all__ = ["RetinaNetWithNormalizer"]


class RetinaNetWithNormalizer(RetinaNet):
    """detectron2's ``RetinaNet`` with the loss normaliser's momentum as an argument.

    Args:
        loss_normalizer_momentum: momentum of the running average of positive anchors
            (0.9: detectron2's behaviour; 0.0: this batch's count, ``max(num_pos, 1)``, as
            mmdet normalises).
        **kwargs: ``RetinaNet``'s arguments.
    """

    def __init__(self, *, loss_normalizer_momentum: float = 0.9, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= loss_normalizer_momentum < 1.0:
            raise ValueError("model.loss_normalizer_momentum must be in [0, 1), got "
                             f"{loss_normalizer_momentum}")
        self.loss_normalizer_momentum = float(loss_normalizer_momentum)

    def _ema_update(self, name: str, value: float, initial_value: float,
                    momentum: float = 0.9) -> float:
        if name == "loss_normalizer":
            momentum = self.loss_normalizer_momentum
        return super()._ema_update(name, value, initial_value, momentum)
