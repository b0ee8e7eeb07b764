"""Write a :class:`~.sources.Source` as webdataset tar shards plus ``manifest.json``.

Sample ``i`` of the source goes to shard ``i // shard_size``, so shard contents do not
depend on which samples were skipped elsewhere (webdataset's ``ShardWriter`` starts a new
shard after a count of *written* samples, which a resumed or parallel writer cannot know).
Each shard is written by webdataset's ``TarWriter`` (fixed mtime: same input, same bytes)
to a temporary name and published atomically (:mod:`mona_scale.atomic_io`), then the
manifest (``complete: false`` until the last shard) is rewritten atomically. Re-running with
the same source and shard size keeps every finished
shard whose size and sha256 match, and rewrites the rest. Shards can be written by several
processes at once (``workers``).
"""
from __future__ import annotations

import hashlib
import logging
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor, as_completed

from mona_scale.atomic_io import atomic_path, remove_stale_temps

import webdataset as wds
from detectron2.utils.file_io import PathManager
from tqdm import tqdm

from .budget import CorruptCounts
from .manifest import FORMAT, MANIFEST, read_manifest, write_manifest
from .sample import InvalidSample, check_image, encode_sample, validate_record
from .sources import Source

__all__ = ["write_shards", "sha256_file"]

logger = logging.getLogger("mona_scale.data.shards")


def sha256_file(path: str) -> str:
    """The hex sha256 of the file at ``path``."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _fingerprint(source: Source, shard_size: int, prefix: str) -> dict:
    return {"source": source.description, "num_source_samples": len(source.dicts),
            "shard_size": shard_size, "prefix": prefix, "task": source.task,
            "classes": source.classes}


def _read_file(path: str) -> bytes:
    # PathManager: also the converted views of raw label maps (reduce-zero-label://)
    with PathManager.open(path, "rb") as f:
        return f.read()


def _members(source: Source, record: dict) -> dict[str, bytes]:
    """Read and validate one sample's files; raise InvalidSample (or OSError)."""
    validate_record(record, len(source.classes) or None)
    image = _read_file(record["file_name"])
    size = (record["height"], record["width"]) if "height" in record else None
    decoded = check_image(image, size, "image")
    sem_seg = None
    if record.get("sem_seg_file_name"):
        sem_seg = _read_file(record["sem_seg_file_name"])
        check_image(sem_seg, decoded, "semantic mask")
    ext = os.path.splitext(record["file_name"])[1].lstrip(".").lower() or "img"
    return encode_sample(record, image, ext, source.relative(record["file_name"]), sem_seg,
                         decoded)


def _kept_shards(manifest_path: str, fingerprint: dict, out_dir: str) -> dict[int, dict]:
    """Finished shards of an earlier run with the same fingerprint whose files match."""
    if not os.path.exists(manifest_path):
        return {}
    try:
        old = read_manifest(manifest_path)
    except (OSError, ValueError):
        return {}
    if old.get("fingerprint") != fingerprint:
        logger.warning(f"{manifest_path} was written from another source or shard size; "
                       f"rewriting every shard")
        return {}
    kept = {}
    for index, shard in enumerate(old["shards"]):
        if shard is None:
            continue
        path = os.path.join(out_dir, shard["name"])
        if (os.path.exists(path) and os.path.getsize(path) == shard["bytes"]
                and sha256_file(path) == shard["sha256"]):
            kept[index] = shard
    return kept


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
    if shard_size < 1:
        raise ValueError(f"shard_size must be >= 1, got {shard_size}")
    if not source.dicts:
        raise ValueError(f"source {source.name!r} has no samples")
    os.makedirs(out_dir, exist_ok=True)
    remove_stale_temps(out_dir)  # shards of a killed run
    prefix = prefix or source.name
    manifest_path = os.path.join(out_dir, MANIFEST)
    fingerprint = _fingerprint(source, shard_size, prefix)
    kept = _kept_shards(manifest_path, fingerprint, out_dir)
    num_shards = (len(source.dicts) + shard_size - 1) // shard_size
    shards: list[dict | None] = [kept.get(i) for i in range(num_shards)]
    manifest = {"format": FORMAT, "name": source.name, "task": source.task,
                "classes": source.classes, "metadata": source.metadata,
                "source": source.description, "shard_size": shard_size,
                "fingerprint": fingerprint, "complete": False, "shards": shards}
    counts = CorruptCounts(max_invalid, f"shard writer ({source.name})")
    for shard in kept.values():
        counts.add_seen(shard["source_range"][1] - shard["source_range"][0])
        for skip in shard["skipped"]:
            counts.add(shard["name"], "invalid", None, skip["reason"], log=False)
    if kept:
        logger.info(f"{out_dir}: keeping {len(kept)} finished shard(s) of {num_shards}")
    bar = tqdm(total=len(source.dicts), initial=counts.seen,
               desc=f"shards {source.name}", unit="img", disable=not progress)

    def finished(index: int, shard: dict) -> None:
        shards[index] = shard
        start, stop = shard["source_range"]
        counts.add_seen(stop - start)
        for skip in shard["skipped"]:
            counts.add(shard["name"], "invalid", f"{skip['index']:08d}",
                       f"source {skip['source']}: {skip['reason']}")
        write_manifest(manifest_path, manifest)
        bar.update(stop - start)
        counts.check(total=len(source.dicts))

    todo = [(i, f"{prefix}-{i:06d}.tar") for i in range(num_shards) if shards[i] is None]
    try:
        if workers <= 1:
            for index, name in todo:
                finished(index, _write_shard(source, out_dir, name, index, shard_size))
        else:
            _write_in_processes(source, out_dir, shard_size, todo, workers, finished)
    finally:
        bar.close()
    manifest["complete"] = True
    manifest["num_samples"] = sum(s["samples"] for s in shards)
    write_manifest(manifest_path, manifest)
    return manifest


_SOURCE: Source | None = None  # what forked writer processes write


def _write_forked(out_dir: str, name: str, index: int, shard_size: int) -> dict:
    return _write_shard(_SOURCE, out_dir, name, index, shard_size)


def _write_in_processes(source: Source, out_dir: str, shard_size: int,
                        todo: list[tuple[int, str]], workers: int, finished) -> None:
    """Write shards in ``workers`` forked processes; ``finished`` as each completes."""
    global _SOURCE
    _SOURCE = source  # inherited by the forked processes, not pickled per task
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"))
    try:
        futures = {pool.submit(_write_forked, out_dir, name, index, shard_size): index
                   for index, name in todo}
        for future in as_completed(futures):
            finished(futures[future], future.result())
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        _SOURCE = None


def _write_shard(source: Source, out_dir: str, name: str, index: int,
                 shard_size: int) -> dict:
    """Write shard ``index``; invalid samples are listed in its ``skipped``."""
    start, stop = index * shard_size, min((index + 1) * shard_size, len(source.dicts))
    path = os.path.join(out_dir, name)
    skipped, written = [], 0
    with atomic_path(path) as tmp:
        with wds.TarWriter(tmp, encoder=False, mtime=0, user="", group="") as writer:
            for i in range(start, stop):
                record = source.dicts[i]
                try:
                    members = _members(source, record)
                except (InvalidSample, OSError) as e:
                    where = source.relative(record.get("file_name", "?"))
                    skipped.append({"index": i, "source": where, "reason": str(e)})
                else:
                    writer.write({"__key__": f"{i:08d}", **members})
                    written += 1
        digest, size = sha256_file(tmp), os.path.getsize(tmp)
    return {"name": name, "samples": written, "bytes": size, "sha256": digest,
            "source_range": [start, stop], "skipped": skipped}
