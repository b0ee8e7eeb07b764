"""Registering our ``PathManager`` handlers (``shard://``, ``reduce-zero-label://``) once."""
from __future__ import annotations

import threading

from detectron2.utils.file_io import PathManager
from iopath.common.file_io import PathHandler

__all__ = ["register_path_handler"]

_LOCK = threading.Lock()


def register_path_handler(handler: PathHandler) -> None:
    """Register ``handler`` with detectron2's ``PathManager`` unless its prefixes are already
    served (idempotent, thread-safe; forked DataLoader workers inherit the registration).

    Args:
        handler: an iopath ``PathHandler``.
    """
    prefixes = handler._get_supported_prefixes()
    with _LOCK:
        if not any(prefix in PathManager._path_handlers for prefix in prefixes):
            PathManager.register_handler(handler)
