"""Training strategies by name (``train.strategy``)."""
from . import ddp  # noqa: F401  (registers "ddp")
from .base import STRATEGIES, Strategy

__all__ = ["STRATEGIES", "Strategy", "build_strategy"]


def build_strategy(name: str, precision, **options) -> Strategy:
    """Instantiate the strategy registered as ``name`` (``KeyError`` lists valid names)."""
    return STRATEGIES.get(name)(precision, **options)
