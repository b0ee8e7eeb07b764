"""Compatibility shims for detectron2 v0.6 on numpy >= 2 and Pillow >= 10.

detectron2 v0.6 predates both and uses ``np.bool``/``np.int``/... and
``PIL.Image.LINEAR``, and calls ``torch.jit.script`` at import time (deprecated in current
torch). :func:`apply` defines the missing aliases once, only where missing, and silences
that one warning;
it runs on import of this module, which every mona_scale module that imports detectron2
imports first.
"""
from __future__ import annotations

import warnings

import numpy as np
from PIL import Image

_NUMPY_ALIASES = {"bool": bool, "int": int, "float": float, "complex": complex,
                  "object": object, "str": str}


def apply() -> None:
    """Define the removed numpy and Pillow aliases that detectron2 v0.6 uses."""
    for name, value in _NUMPY_ALIASES.items():
        if name not in np.__dict__:
            setattr(np, name, value)
    if not hasattr(Image, "LINEAR"):
        Image.LINEAR = Image.BILINEAR
    # detectron2 v0.6 scripts a few helpers with torch.jit at import time.
    warnings.filterwarnings("ignore", message="`torch.jit.script` is deprecated",
                            category=FutureWarning)


apply()
