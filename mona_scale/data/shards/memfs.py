"""``shard://`` paths: image and mask bytes held in memory, readable through detectron2's
``PathManager``, so every existing mapper reads streamed samples unchanged.

The reader serves a sample's members for the duration of its mapper call
(:func:`serving`); a ``shard://<shard>/<key>.<ext>`` name also tells error messages which
shard and sample a file came from. Files that evaluators read after mapping (semantic
ground-truth masks) are :func:`publish`-ed for the life of the process instead. The
handler is registered with detectron2's ``PathManager`` when this module is imported.
"""
from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator, Mapping

from iopath.common.file_io import PathHandler

from ..path_handlers import register_path_handler

PREFIX = "shard://"
_FILES: dict[str, bytes] = {}
_PUBLISHED: dict[str, bytes] = {}


class ShardPathHandler(PathHandler):
    """Read-only handler for ``shard://`` paths served by :func:`serving`."""

    def _get_supported_prefixes(self) -> list[str]:
        return [PREFIX]

    def _open(self, path: str, mode: str = "r", buffering: int = -1, **kwargs):
        if any(c in mode for c in "wax+"):
            raise OSError(f"{path}: shard:// files are read-only")
        if not self._exists(path):
            raise FileNotFoundError(f"{path} is not being served (shard:// files exist only "
                                    f"while their sample is mapped)")
        data = io.BytesIO(_FILES[path] if path in _FILES else _PUBLISHED[path])
        return data if "b" in mode else io.TextIOWrapper(data, encoding="utf-8")

    def _exists(self, path: str, **kwargs) -> bool:
        return path in _FILES or path in _PUBLISHED

    _isfile = _exists


register_path_handler(ShardPathHandler())  # forked DataLoader workers inherit it


@contextlib.contextmanager
def serving(files: Mapping[str, bytes]) -> Iterator[None]:
    """Make ``files`` (``shard://`` path -> bytes) readable until the block ends."""
    _FILES.update(files)
    try:
        yield
    finally:
        for path in files:
            _FILES.pop(path, None)


def publish(files: Mapping[str, bytes]) -> None:
    """Keep ``files`` readable for the rest of this process (e.g. ground-truth masks that
    detectron2's ``SemSegEvaluator`` opens by their dataset-dict name)."""
    _PUBLISHED.update(files)
