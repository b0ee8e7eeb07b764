"""Training strategies by name (``train.strategy``): ``ddp``, ``fsdp``, ``deepspeed``."""
from . import ddp, deepspeed, fsdp  # noqa: F401  (register the strategies)
from .base import STRATEGIES, Strategy

__all__ = ["STRATEGIES", "Strategy", "build_strategy"]


def build_strategy(name: str, precision, grad_accum: int = 1, clip_grad: float = 0.0,
                   **options) -> Strategy:
    """Instantiate the strategy registered as ``name`` (which checks its options).

    Args:
        name: ``train.strategy``.
        precision: the run's :class:`~mona_scale.engine.precision.Precision`.
        grad_accum: ``train.grad_accum``.
        clip_grad: ``train.clip_grad``.
        options: ``train.<name>`` sub-options.

    Returns:
        The strategy. ``KeyError`` lists valid names for an unknown one; ``ValueError`` names
        an unknown option key (and the allowed ones) or a value that cannot work.
    """
    return STRATEGIES.get(name)(precision, grad_accum, clip_grad, **options)
