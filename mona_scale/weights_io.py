"""Reading weight files without running code: the restricted unpickler and flat state dicts.

``.pth`` / ``.pt`` / ``.bin`` files load with ``torch.load(weights_only=True)``,
``.safetensors`` with safetensors, and ``.pkl`` files (detectron2's model zoo) through
:func:`read_pickle_weights`, which admits only numpy arrays, dtypes, numbers, strings and
plain containers. This is file I/O only: it knows no model and no engine.
"""
from __future__ import annotations

import os
import pickle
import re
from collections.abc import Mapping

import numpy as np
import torch

__all__ = ["read_pickle_weights", "read_state_dict", "unwrap_state_dict", "UnsafePickleError",
           "SAFE_PICKLE_GLOBALS"]

#: keys under which checkpoint files nest their state dict, in the order they are tried
CONTAINER_KEYS = ("state_dict", "model", "module", "state_dict_ema")

#: the only globals a weights pickle may name: numpy arrays / scalars / dtypes (numpy 1 and 2
#: module paths), an ordered dict, and the codec python 3 uses for bytes in protocol 2
SAFE_PICKLE_GLOBALS = frozenset({
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("collections", "OrderedDict"), ("_codecs", "encode"),
})
_NUMPY_DTYPE_CLASS = re.compile(r"^numpy\.dtypes$")  # numpy 2 may name e.g. Float32DType


class UnsafePickleError(pickle.UnpicklingError):
    """A weights pickle names a global outside :data:`SAFE_PICKLE_GLOBALS`."""


class _WeightsUnpickler(pickle.Unpickler):
    def __init__(self, file, source: str):
        super().__init__(file, encoding="latin1")
        self.source = source

    def find_class(self, module: str, name: str):
        if (module, name) in SAFE_PICKLE_GLOBALS or (
                _NUMPY_DTYPE_CLASS.match(module) and name.endswith("DType")):
            return super().find_class(module, name)
        raise UnsafePickleError(
            f"{self.source}: refusing to load global '{module}.{name}': a weights .pkl may "
            f"only hold numpy arrays and plain containers (dict, list, str, numbers), because "
            f"unpickling anything else can run code. If you trust the file, convert it once in "
            f"a separate python: d = pickle.load(open(path, 'rb'), encoding='latin1'); "
            f"torch.save({{k: torch.as_tensor(v) for k, v in d['model'].items()}}, "
            f"'weights.pth'), and pass the .pth")


def read_pickle_weights(path: str | os.PathLike):
    """Unpickle a ``.pkl`` weights file (detectron2 / Detectron model zoo) without running
    code: only numpy arrays, dtypes and plain containers are admitted.

    Args:
        path: the ``.pkl`` file.

    Returns:
        The unpickled object (usually ``{"model": {name: ndarray}, "__author__": ...}``).
        Raises :class:`UnsafePickleError` naming the file and the refused global.
    """
    path = os.fspath(path)
    with open(path, "rb") as f:
        return _WeightsUnpickler(f, path).load()


def read_state_dict(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], str]:
    """Read a checkpoint file into a flat ``{key: tensor}`` dict.

    Args:
        path: ``.pth``/``.pt``/``.bin`` (torch), ``.safetensors`` or ``.pkl`` (detectron2,
            numpy arrays).

    Returns:
        (state dict, container key it was found under or ``""``).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"weights file {path!r} does not exist")
    if path.endswith(".pkl"):
        obj = read_pickle_weights(path)
    elif path.endswith(".safetensors"):
        from safetensors.torch import load_file
        obj = load_file(path)
    else:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    return unwrap_state_dict(obj, path)


def unwrap_state_dict(obj, source: str) -> tuple[dict[str, torch.Tensor], str]:
    """The tensors of a loaded checkpoint object, taken out of its container key.

    Args:
        obj: what a weights file held (a state dict, or one nested under one of
            ``state_dict``, ``model``, ``module``, ``state_dict_ema``).
        source: the file name, for the error message.

    Returns:
        (``{key: tensor}`` with numpy arrays converted and non-tensors dropped, container key
        or ``""``). ``ValueError`` naming ``source`` when ``obj`` is not a mapping.
    """
    if not isinstance(obj, Mapping):
        raise ValueError(f"{source}: expected a dict of tensors, got {type(obj).__name__}")
    for key in CONTAINER_KEYS:
        if isinstance(obj.get(key), Mapping):
            return _tensors(obj[key]), key
    return _tensors(obj), ""


def _tensors(state: Mapping) -> dict[str, torch.Tensor]:
    """The tensors and numpy arrays (as tensors) of ``state``; other values are dropped."""
    return {k: torch.from_numpy(np.ascontiguousarray(v)) if isinstance(v, np.ndarray) else v
            for k, v in state.items() if isinstance(v, (np.ndarray, torch.Tensor))}
