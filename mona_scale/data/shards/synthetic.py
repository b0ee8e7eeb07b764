"""Shards of the synthetic sets, made on first use (as the synthetic files are)."""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

from filelock import FileLock

from ..synthetic import GENERATOR_VERSION, default_root, synthetic_dataset_dicts
from .manifest import MANIFEST, read_manifest
from .sources import catalog_source
from .writer import write_shards

__all__ = ["synthetic_shards"]


def synthetic_shards(name: str, root: str | None = None, num_images: int | None = None,
                     shard_size: int = 32) -> str:
    """Generate (once) the synthetic set ``name`` and write it as shards.

    Safe to call from every rank at once: generation holds a file lock, and a complete
    manifest made with the same arguments is returned without touching any file.

    Args:
        name: a synthetic dataset (``shapes_instances_train``, ``shapes_cls_val``, ...).
        root: dataset root; default ``$MONA_DATASETS`` (see ``default_root``).
        num_images: images in the set; default the set's standard size.
        shard_size: images per shard.

    Returns:
        The manifest path ``<root>/shards/<name>-<num_images>-<shard_size>/manifest.json``.
    """
    root = default_root() if root is None else os.path.abspath(root)
    out = Path(root) / "shards" / f"{name}-{num_images or 'default'}-{shard_size}"
    signature = {"type": "catalog", "dataset": name, "num_images": num_images,
                 "synthetic_version": GENERATOR_VERSION}

    def done() -> bool:
        with contextlib.suppress(OSError, ValueError):
            written = read_manifest(str(out / MANIFEST))
            return bool(written.get("complete")) and written["fingerprint"]["source"] == signature
        return False

    out.mkdir(parents=True, exist_ok=True)
    if not done():
        with FileLock(str(out / ".lock")):  # one process writes, the others wait
            if not done():  # not written while we waited
                synthetic_dataset_dicts(name, root, num_images)
                source = catalog_source(name)
                source.description = signature
                write_shards(source, str(out), shard_size, prefix=name,
                             progress=len(source.dicts) >= 200)
    return str(out / MANIFEST)
