"""Atomic file writes: a file appears complete under its final name, or not at all.

Every writer in the library (checkpoints, pointers, configs, manifests, shards, exports,
pretrained conversions, generated data) goes through :func:`atomic_path` or
:func:`atomic_write`: the content is written to a temporary name next to the target in the
same directory, flushed to disk, then ``os.replace``d over the target, which POSIX makes
atomic. A process killed mid-write leaves the previous file intact and at most a temporary
file named ``<name>.tmp.<pid>`` (``TEMP_MARK`` in it), which :func:`remove_stale_temps`
deletes.
"""
from __future__ import annotations

import contextlib
import glob
import os
from collections.abc import Iterator
from typing import IO

__all__ = ["atomic_path", "atomic_write", "remove_stale_temps", "TEMP_MARK"]

TEMP_MARK = ".tmp."


def _fsync_path(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[str]:
    """A temporary path to write ``path``'s content to; published when the block succeeds.

    For writers that take a file name (``torch.save``, ``LazyConfig.save``,
    ``safetensors.save_file``). On an exception the temporary file is removed and the
    target is untouched.

    Args:
        path: the final file name.

    Returns:
        A context manager yielding the temporary file name to write.
    """
    path = os.fspath(path)
    tmp = f"{path}{TEMP_MARK}{os.getpid()}"
    try:
        yield tmp
        _fsync_path(tmp)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w") -> Iterator[IO]:
    """An open file whose content replaces ``path`` atomically when the block succeeds.

    Args:
        path: the final file name.
        mode: ``"w"`` (text) or ``"wb"`` (bytes).

    Returns:
        A context manager yielding the open temporary file.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write mode must be 'w' or 'wb', got {mode!r}")
    with atomic_path(path) as tmp, open(tmp, mode) as f:
        yield f


def remove_stale_temps(directory: str | os.PathLike) -> list[str]:
    """Delete temporary files that killed writers left in ``directory``.

    Args:
        directory: the directory to clean (not recursive).

    Returns:
        The removed paths.
    """
    removed = []
    for tmp in glob.glob(os.path.join(glob.escape(os.fspath(directory)), f"*{TEMP_MARK}*")):
        if os.path.isfile(tmp):
            with contextlib.suppress(FileNotFoundError):
                os.remove(tmp)
                removed.append(tmp)
    return removed
