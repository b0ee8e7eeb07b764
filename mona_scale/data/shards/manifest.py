"""The manifest of a shard set (``manifest.json`` next to its tars) and the reader's view
of one or more shard sets (:class:`ShardSet`).

A manifest records the task, class names, dataset metadata (e.g. COCO's category id
mapping), the source it came from, and per shard: file name, sample count, byte size,
sha256, the source index range it covers and the source samples skipped there. Plain
webdataset has no such record; the sample counts are what tell a complete shard from one cut
at a member boundary, and what makes an evaluation pass countable.

Locations are opened with webdataset's ``gopen`` (local paths, ``file://``, ``pipe:<shell
command>``, ``http(s)://`` through curl, and any scheme registered in
``webdataset.gopen.gopen_schemes``). Shard names read from a manifest are data, not
commands: :func:`shard_url` accepts only plain file names (no shell metacharacters, no path
separators) and shell-quotes them (``shlex.quote``) before they become part of a ``pipe:``
command. Messages show locations with credentials redacted (:func:`mona_scale.redact.redact`).
"""
from __future__ import annotations

import json
import os
import re
import shlex
from dataclasses import dataclass, field

from mona_scale.atomic_io import atomic_write
from mona_scale.redact import redact

from webdataset.gopen import gopen
from webdataset.shardlists import expand_urls

from ..cls_readers import datasets_root

FORMAT = "mona_scale.shards/1"
MANIFEST = "manifest.json"
#: what a shard's file name in a manifest may be: letters, digits, ``.``, ``_``, ``-``, ``+``
SHARD_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,254}$")


def shard_url(template: str, name: str, where: str = "manifest") -> str:
    """A shard's URL from ``url_template`` (``{name}`` is its file name). ``name`` must be a
    plain file name (:data:`SHARD_NAME`, no ``..``), else ``ValueError`` naming it: a
    manifest must not smuggle a shell command or another path in; in a ``pipe:`` command
    it is shell-quoted as well.

    Args:
        template: e.g. ``pipe:aws s3 cp s3://bucket/coco/{name} -``.
        name: the shard's name in the manifest.
        where: the manifest, for messages.

    Returns:
        The URL.
    """
    if not isinstance(name, str) or not SHARD_NAME.match(name) or ".." in name:
        raise ValueError(f"{redact(where)}: shard name {name!r} is not a plain file name "
                         f"(letters, digits, '.', '_', '-', '+'; no '..'): refusing to build a "
                         f"path or pipe: command from it")
    return template.replace("{name}", shlex.quote(name) if template.startswith("pipe:")
                            else name)


def _local(url: str) -> str | None:
    """The local path of ``url``, or None for a pipe: command or a remote URL."""
    local = url.startswith("file://") or not re.match(r"^[a-z][a-z0-9+.-]*:", url)
    return url.removeprefix("file://") if local else None


def _manifest_url(url: str) -> str:
    """``url``, or the manifest inside it when it is a local directory."""
    local = _local(url)
    return os.path.join(local, MANIFEST) if local is not None and os.path.isdir(local) else url


def read_manifest(url: str) -> dict:
    """Read a manifest.

    Args:
        url: a path, a directory holding ``manifest.json``, or any URL webdataset's
            ``gopen`` opens (``file://``, ``pipe:``, ``https://``, ...).

    Returns:
        The manifest.
    """
    url = _manifest_url(url)
    if _local(url) is not None and not os.path.exists(_local(url)):
        raise FileNotFoundError(f"no shard manifest at {_local(url)!r}: write the shards with "
                                f"`mona-shards <layout> ... --out <dir>` (see mona-shards "
                                f"--help); relative config paths are under "
                                f"$DETECTRON2_DATASETS (default ./datasets)")
    with gopen(url, "rb") as f:
        manifest = json.loads(f.read())
    if manifest.get("format") != FORMAT:
        raise ValueError(f"{redact(url)} is not a mona_scale shard manifest (format "
                         f"{manifest.get('format')!r}, expected {FORMAT!r})")
    return manifest


def write_manifest(path: str, manifest: dict) -> None:
    """Write ``manifest`` to ``path`` atomically (:func:`mona_scale.atomic_io.atomic_write`)."""
    with atomic_write(path) as f:
        json.dump(manifest, f, indent=1, sort_keys=True)


@dataclass(frozen=True)
class ShardInfo:
    """One shard as the reader sees it: its name (in logs and ``shard://`` paths), URL,
    sample count and sha256 (None when read without a manifest)."""

    name: str
    url: str
    samples: int | None = None
    sha256: str | None = None


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
            manifests: manifest locations (path, directory or URL); relative paths are
                under ``$DETECTRON2_DATASETS`` (default ``./datasets``), as detectron2's
                builtin datasets.
            url_template: shard URL with ``{name}`` for the shard file name, e.g.
                ``pipe:aws s3 cp s3://bucket/coco/{name} -``; default: next to the manifest
                (needed for a manifest read through ``pipe:``).

        Returns:
            The shard set.
        """
        manifests = [manifests] if isinstance(manifests, str) else list(manifests)
        shards, tasks, classes, metadata = [], set(), None, {}
        for location in manifests:
            if _local(location) == location and not os.path.isabs(location):
                location = os.path.join(datasets_root(), location)
            location = _manifest_url(location)
            manifest = read_manifest(location)
            if not manifest.get("complete"):
                raise ValueError(f"{redact(location)}: the shard set is incomplete (its writer "
                                 f"did not finish); re-run mona-shards to complete it")
            if classes is not None and manifest["classes"] != classes:
                raise ValueError(f"{redact(location)}: classes differ from the other "
                                 f"manifests'")
            classes, metadata = manifest["classes"], {**manifest.get("metadata", {}), **metadata}
            tasks.add(manifest["task"])
            if url_template is None and location.startswith("pipe:"):
                raise ValueError("shards of a manifest read through pipe: need url_template "
                                 "(e.g. 'pipe:aws s3 cp s3://bucket/coco/{name} -')")
            template = url_template or os.path.join(os.path.dirname(location), "{name}")
            shards += [ShardInfo(s["name"], shard_url(template, s["name"], location),
                                 s["samples"], s.get("sha256")) for s in manifest["shards"]]
        if len(tasks) > 1:
            raise ValueError(f"manifests of different tasks {sorted(tasks)}: "
                             f"{redact(manifests)}")
        return cls(shards, tasks.pop(), classes, metadata)

    @classmethod
    def from_urls(cls, urls: str | list[str], task: str = "unknown",
                  classes: list[str] | None = None) -> ShardSet:
        """Shards from URLs or brace patterns (``/data/coco-{000000..000127}.tar``),
        expanded by webdataset (:func:`webdataset.shardlists.expand_urls`).

        Args:
            urls: a URL pattern or a list of them.
            task: ``instances``, ``sem_seg`` or ``classification``.
            classes: class names.

        Returns:
            The shard set (without sample counts).
        """
        urls = [u for p in ([urls] if isinstance(urls, str) else urls) for u in expand_urls(p)]
        return cls([ShardInfo(redact(os.path.basename(u.split()[-1]) or u), u)  # names are
                    for u in urls], task, list(classes or []))  # logged: no credentials

    @property
    def num_samples(self) -> int | None:
        """Samples of all shards, or None when a count is unknown."""
        counts = [s.samples for s in self.shards]
        return None if None in counts else sum(counts)
