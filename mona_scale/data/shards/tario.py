"""Shard URLs and tar streams: open a local path, ``file://`` URL or ``pipe:`` command,
expand brace patterns, read samples (consecutive members sharing a key), write tars.

The format is webdataset's: a sample is the run of members ``<key>.<ext>`` with the same
key (the basename up to its first dot), e.g. ``00000042.json`` + ``00000042.jpg``.
"""
from __future__ import annotations

import contextlib
import io
import os
import re
import subprocess
import tarfile
from collections.abc import Iterable, Iterator

__all__ = ["TruncatedShard", "expand_urls", "open_url", "read_samples", "TarSampleWriter"]

_RANGE = re.compile(r"\{(\d+)\.\.(\d+)\}")
_CHOICE = re.compile(r"\{([^{}]*,[^{}]*)\}")


class TruncatedShard(Exception):
    """A tar stream ended or broke in the middle; ``complete`` samples were read before."""

    def __init__(self, url: str, complete: int, last_key: str | None, cause: Exception):
        self.url, self.complete, self.last_key = url, complete, last_key
        super().__init__(f"shard {url} is truncated or corrupt after {complete} samples "
                         f"(last complete key {last_key!r}): {cause}")


def expand_urls(spec: str | Iterable[str]) -> list[str]:
    """Expand ``{000..099}`` ranges (zero padding kept) and ``{a,b}`` choices.

    Args:
        spec: a URL pattern, or a list of patterns (each expanded, in order).
    """
    if not isinstance(spec, str):
        return [url for item in spec for url in expand_urls(item)]
    match = _RANGE.search(spec)
    if match:
        first, last = match.group(1), match.group(2)
        width = len(first) if first.startswith("0") or len(first) == len(last) else 0
        values = [f"{i:0{width}d}" for i in range(int(first), int(last) + 1)]
    else:
        match = _CHOICE.search(spec)
        if not match:
            return [spec]
        values = match.group(1).split(",")
    head, tail = spec[:match.start()], spec[match.end():]
    return [url for value in values for url in expand_urls(head + value + tail)]


class _PipeStream(io.RawIOBase):
    """stdout of a shell command; closing checks its exit status."""

    def __init__(self, command: str):
        self.command, self.eof = command, False
        self.process = subprocess.Popen(command, shell=True, stdout=subprocess.PIPE)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        count = self.process.stdout.readinto(buffer)
        self.eof = self.eof or count == 0
        return count

    def close(self) -> None:
        """Closing after the end checks the exit status; closing early stops the command."""
        if self.closed:
            return
        if not self.eof:
            self.process.kill()
        self.process.stdout.close()
        status = self.process.wait()
        super().close()
        if self.eof and status != 0:
            raise OSError(f"pipe:{self.command} exited with status {status}")


def open_url(url: str):
    """A readable binary stream for a local path, ``file://`` URL or ``pipe:<command>``
    (e.g. ``pipe:aws s3 cp s3://bucket/coco-000000.tar -``, ``pipe:curl -s URL``)."""
    url = os.fspath(url)
    if url.startswith("pipe:"):
        return io.BufferedReader(_PipeStream(url[len("pipe:"):]), 1 << 20)
    if url.startswith("file://"):
        url = url[len("file://"):]
    elif re.match(r"^[a-z][a-z0-9+.-]*://", url):
        raise ValueError(f"unsupported shard URL {url!r}: use a local path, file:// or "
                         f"pipe:<command> (e.g. 'pipe:curl -s {url}')")
    return open(url, "rb", buffering=1 << 20)


def join_url(base: str, name: str) -> str:
    """``name`` next to ``base`` (a local path or ``file://`` URL of a file)."""
    if base.startswith("pipe:"):
        raise ValueError("shards of a manifest read through pipe: need url_template "
                         "(e.g. 'pipe:aws s3 cp s3://bucket/coco/{name} -')")
    return os.path.join(os.path.dirname(base), name)


def _split_member(name: str) -> tuple[str, str]:
    base = os.path.basename(name)
    key, _, ext = base.partition(".")
    return os.path.join(os.path.dirname(name), key) if os.path.dirname(name) else key, ext


def read_samples(url: str, stream=None) -> Iterator[tuple[str, dict[str, bytes]]]:
    """Yield ``(key, {ext: bytes})`` for each sample of the tar at ``url``.

    Raises:
        TruncatedShard: after the complete samples, when the stream breaks (a sample cut
            short is not yielded).
    """
    count, key, done, members = 0, None, None, {}
    try:
        with contextlib.ExitStack() as stack:  # closing a pipe: checks its exit status
            fileobj = stream if stream is not None else stack.enter_context(open_url(url))
            archive = stack.enter_context(tarfile.open(fileobj=fileobj, mode="r|"))
            for info in archive:
                if not info.isfile():
                    continue
                member_key, ext = _split_member(info.name)
                if member_key != key and key is not None:
                    yield key, members
                    count, done, members = count + 1, key, {}
                key = member_key
                members[ext] = archive.extractfile(info).read()
    except (tarfile.TarError, EOFError, OSError, ValueError) as e:
        raise TruncatedShard(url, count, done, e) from e
    if key is not None:
        yield key, members


class TarSampleWriter:
    """Write samples to a tar with reproducible headers (same input, same bytes)."""

    def __init__(self, fileobj):
        self.archive = tarfile.open(fileobj=fileobj, mode="w", format=tarfile.USTAR_FORMAT)

    def write(self, key: str, members: dict[str, bytes]) -> None:
        for ext, data in members.items():
            info = tarfile.TarInfo(f"{key}.{ext}")
            info.size, info.mode, info.mtime = len(data), 0o444, 0
            self.archive.addfile(info, io.BytesIO(data))

    def close(self) -> None:
        self.archive.close()
