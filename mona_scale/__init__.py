"""mona_scale: Mona adapter tuning of Swin Transformers at cluster scale."""
from . import compat  # noqa: F401  (detectron2 v0.6 shims; must run before detectron2 loads)

__version__ = "0.1.0"
