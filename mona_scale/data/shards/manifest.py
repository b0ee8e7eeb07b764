"""The manifest of a shard set (``manifest.json`` next to its tars) and the reader's view
of one or more shard sets (:class:`ShardSet`).

A manifest records the task, class names, dataset metadata (e.g. COCO's category id
mapping), the source it came from, and per shard: file name, sample count, byte size,
sha256, the source index range it covers and the source samples skipped there.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

from mona_scale.redact import redact

from ..cls_readers import datasets_root
from .tario import expand_urls, join_url, open_url, shard_url

__all__ = ["FORMAT", "ShardInfo", "ShardSet", "read_manifest", "write_manifest"]

FORMAT = "mona_scale.shards/1"
MANIFEST = "manifest.json"


def read_manifest(url: str) -> dict:
    """Read a manifest from a path, ``file://`` URL or ``pipe:`` command, or a directory
    holding ``manifest.json``."""
    local = None if url.startswith("pipe:") else url.removeprefix("file://")
    if local is not None and os.path.isdir(local):
        url = local = os.path.join(local, MANIFEST)
    if local is not None and not os.path.exists(local):
        raise FileNotFoundError(f"no shard manifest at {local!r}: write the shards with "
                                f"`mona-shards <layout> ... --out <dir>` (see mona-shards "
                                f"--help); relative config paths are under "
                                f"$DETECTRON2_DATASETS (default ./datasets)")
    with open_url(url) as f:
        manifest = json.loads(f.read())
    if manifest.get("format") != FORMAT:
        raise ValueError(f"{redact(url)} is not a mona_scale shard manifest (format "
                         f"{manifest.get('format')!r}, expected {FORMAT!r})")
    return manifest


def write_manifest(path: str, manifest: dict) -> None:
    """Write ``manifest`` to ``path`` atomically (temporary file, then rename)."""
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
    os.replace(tmp, path)


def _resolve(location: str) -> str:
    if location.startswith(("pipe:", "file://")) or os.path.isabs(location):
        return location
    return os.path.join(datasets_root(), location)


@dataclass(frozen=True)
class ShardInfo:
    """One shard as the reader sees it: its name (in logs and ``shard://`` paths), URL and
    sample count (None when read without a manifest)."""

    name: str
    url: str
    samples: int | None = None


@dataclass
class ShardSet:
    """Shards to read, with what evaluation and mappers need to know about them.

    Build one with :meth:`from_manifests` (sample counts, classes, metadata) or
    :meth:`from_urls` (URLs or brace patterns, no counts: training only).
    """

    shards: list[ShardInfo]
    task: str = "unknown"
    classes: list[str] = field(default_factory=list)
    metadata: dict = field(default_factory=dict)
    name: str = ""  # the registered dataset name (see loader.shard_dataset)

    @classmethod
    def from_manifests(cls, manifests: str | list[str],
                       url_template: str | None = None) -> ShardSet:
        """Shards of one or more manifests (e.g. VOC 2007 + 2012 trainval).

        Args:
            manifests: manifest locations (path, directory, ``file://`` or ``pipe:``);
                relative paths are under ``$DETECTRON2_DATASETS`` (default ``./datasets``),
                as detectron2's builtin datasets.
            url_template: shard URL with ``{name}`` for the shard file name, e.g.
                ``pipe:aws s3 cp s3://bucket/coco/{name} -``; default: next to the manifest.
        """
        manifests = [manifests] if isinstance(manifests, str) else list(manifests)
        shards, tasks, classes, metadata = [], set(), None, {}
        for location in map(_resolve, manifests):
            manifest = read_manifest(location)
            if not manifest.get("complete"):
                raise ValueError(f"{redact(location)}: the shard set is incomplete (its writer did "
                                 f"not finish); re-run mona-shards to complete it")
            if classes is not None and manifest["classes"] != classes:
                raise ValueError(f"{redact(location)}: classes differ from the other "
                                 f"manifests'")
            classes, metadata = manifest["classes"], {**manifest.get("metadata", {}), **metadata}
            tasks.add(manifest["task"])
            base = location if not os.path.isdir(location) else os.path.join(location, MANIFEST)
            for shard in manifest["shards"]:
                url = (shard_url(url_template, shard["name"], location) if url_template
                       else join_url(base, shard["name"]))
                shards.append(ShardInfo(shard["name"], url, shard["samples"]))
        if len(tasks) > 1:
            raise ValueError(f"manifests of different tasks {sorted(tasks)}: "
                             f"{redact(manifests)}")
        return cls(shards, tasks.pop(), classes, metadata)

    @classmethod
    def from_urls(cls, urls: str | list[str], task: str = "unknown",
                  classes: list[str] | None = None) -> ShardSet:
        """Shards from URLs or brace patterns (``/data/coco-{000000..000127}.tar``)."""
        shards = [ShardInfo(redact(os.path.basename(u.split()[-1]) or u), u)
                  for u in expand_urls(urls)]  # the name is logged: no credentials in it
        return cls(shards, task, list(classes or []))

    @property
    def num_samples(self) -> int | None:
        counts = [s.samples for s in self.shards]
        return None if None in counts else sum(counts)
