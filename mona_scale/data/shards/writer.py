"""Write a :class:`~.sources.Source` as webdataset tar shards plus ``manifest.json``.

Sample ``i`` of the source goes to shard ``i // shard_size``, so shard contents do not
depend on which samples were skipped elsewhere (webdataset's ``ShardWriter`` starts a new
shard after a count of *written* samples, which a resumed or parallel writer cannot know).
Each shard is written by webdataset's ``TarWriter`` (fixed mtime: same input, same bytes)
to a temporary name and published atomically (:mod:`mona_scale.atomic_io`), then the
manifest (``complete: false`` until the last shard) is rewritten atomically. Re-running with
the same source and shard size keeps every finished shard whose size and sha256 match, and
rewrites the rest. Shards can be written by several (forked) processes at once (``workers``).
"""
from __future__ import annotations

import hashlib
import logging
import multiprocessing
import os

from mona_scale.atomic_io import atomic_path, remove_stale_temps

import webdataset as wds
from tqdm import tqdm

from .budget import CorruptCounts
from .manifest import FORMAT, MANIFEST, read_manifest, write_manifest
from .sample import InvalidSample, encode_sample
from .sources import Source

logger = logging.getLogger("mona_scale.data.shards")
_SOURCE: Source | None = None  # what the (forked) shard writers write


def sha256_file(path: str) -> str:
    """The hex sha256 of the file at ``path``."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _kept_shards(manifest_path: str, fingerprint: dict, out_dir: str) -> dict[int, dict]:
    """Finished shards of an earlier run with the same fingerprint whose files match."""
    try:
        old = read_manifest(manifest_path)
    except (OSError, ValueError):
        return {}
    if old.get("fingerprint") != fingerprint:
        logger.warning(f"{manifest_path} was written from another source or shard size; "
                       f"rewriting every shard")
        return {}
    return {i: shard for i, shard in enumerate(old["shards"]) if shard is not None
            and os.path.exists(path := os.path.join(out_dir, shard["name"]))
            and os.path.getsize(path) == shard["bytes"] and sha256_file(path) == shard["sha256"]}


def write_shards(source: Source, out_dir: str, shard_size: int = 1000,
                 prefix: str | None = None, max_invalid: float = 0.001,
                 progress: bool = True, workers: int = 1) -> dict:
    """Write ``source`` to ``<out_dir>/<prefix>-NNNNNN.tar`` and ``<out_dir>/manifest.json``.

    Args:
        source: what to write (see :mod:`.sources`).
        out_dir: output directory (created).
        shard_size: source samples per shard.
        prefix: shard file name prefix; default the source's name.
        max_invalid: allowed fraction of samples that fail validation (missing or
            undecodable images, bad annotations), each reported with its source path and
            skipped; more stops the writer with an error naming the worst shard (finished
            shards stay, so a re-run after fixing the data resumes).
        progress: show a progress bar.
        workers: processes writing shards in parallel (reading and validating images is
            the cost; 1 = in this process).

    Returns:
        The manifest (also written to ``<out_dir>/manifest.json``).
    """
    global _SOURCE
    if shard_size < 1:
        raise ValueError(f"shard_size must be >= 1, got {shard_size}")
    if not source.dicts:
        raise ValueError(f"source {source.name!r} has no samples")
    os.makedirs(out_dir, exist_ok=True)
    remove_stale_temps(out_dir)  # shards of a killed run
    prefix, manifest_path = prefix or source.name, os.path.join(out_dir, MANIFEST)
    fingerprint = {"source": source.description, "num_source_samples": len(source.dicts),
                   "shard_size": shard_size, "prefix": prefix, "task": source.task,
                   "classes": source.classes}
    kept = _kept_shards(manifest_path, fingerprint, out_dir)
    shards: list[dict | None] = [None] * ((len(source.dicts) + shard_size - 1) // shard_size)
    manifest = {"format": FORMAT, "name": source.name, "metadata": source.metadata,
                **fingerprint, "fingerprint": fingerprint, "complete": False, "shards": shards}
    counts = CorruptCounts(max_invalid, f"shard writer ({source.name})")
    bar = tqdm(total=len(source.dicts), desc=f"shards {source.name}", unit="img",
               disable=not progress)

    def finished(index: int, shard: dict, fresh: bool = True) -> None:
        shards[index] = shard
        start, stop = shard["source_range"]
        counts.seen += stop - start
        for skip in shard["skipped"]:
            counts.add(shard["name"], "invalid", f"{skip['index']:08d}",
                       f"source {skip['source']}: {skip['reason']}", log=fresh)
        bar.update(stop - start)
        if fresh:
            write_manifest(manifest_path, manifest)
            counts.check(total=len(source.dicts))

    for index, shard in kept.items():
        finished(index, shard, fresh=False)
    if kept:
        logger.info(f"{out_dir}: keeping {len(kept)} finished shard(s) of {len(shards)}")
    todo = [(out_dir, f"{prefix}-{i:06d}.tar", i, shard_size)
            for i, shard in enumerate(shards) if shard is None]
    _SOURCE = source  # inherited by forked writers, not pickled per shard
    pool = multiprocessing.get_context("fork").Pool(workers) if workers > 1 else None
    try:
        for index, shard in (pool.imap_unordered if pool else map)(_write_shard, todo):
            finished(index, shard)
    finally:
        bar.close()
        _SOURCE = None
        if pool:
            pool.terminate()
    manifest["complete"] = True
    manifest["num_samples"] = sum(s["samples"] for s in shards)
    write_manifest(manifest_path, manifest)
    return manifest


def _write_shard(task: tuple[str, str, int, int]) -> tuple[int, dict]:
    """Write shard ``index`` of ``_SOURCE``; invalid samples are listed in its ``skipped``."""
    out_dir, name, index, shard_size = task
    start, stop = index * shard_size, min((index + 1) * shard_size, len(_SOURCE.dicts))
    path, skipped = os.path.join(out_dir, name), []
    with atomic_path(path) as tmp:
        with wds.TarWriter(tmp, encoder=False, mtime=0, user="", group="") as writer:
            for i in range(start, stop):
                record = _SOURCE.dicts[i]
                where = _SOURCE.relative(record.get("file_name", "?"))
                try:
                    members = encode_sample(record, where, len(_SOURCE.classes) or None)
                except (InvalidSample, OSError) as e:
                    skipped.append({"index": i, "source": where, "reason": str(e)})
                else:
                    writer.write({"__key__": f"{i:08d}", **members})
        digest, size = sha256_file(tmp), os.path.getsize(tmp)
    return index, {"name": name, "samples": stop - start - len(skipped), "bytes": size,
                   "sha256": digest,
                   "source_range": [start, stop], "skipped": skipped}
