"""Shard URLs and tar streams: open a local path, ``file://`` URL or ``pipe:`` command,
expand brace patterns, read samples (consecutive members sharing a key), write tars.

A ``pipe:`` URL is a shell command. Shard names read from a manifest are data, not
commands: :func:`shard_url` accepts only plain file names (no shell metacharacters, no
path separators) and quotes them (``shlex.quote``) before they become part of a command or
a path. Messages show URLs with credentials redacted (:func:`mona_scale.redact.redact`).

The format is webdataset's: a sample is the run of members ``<key>.<ext>`` with the same
key (the basename up to its first dot), e.g. ``00000042.json`` + ``00000042.jpg``.
"""
from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import subprocess
import tarfile
from collections.abc import Iterable, Iterator

from mona_scale.redact import redact

__all__ = ["TruncatedShard", "expand_urls", "open_url", "read_samples", "TarSampleWriter",
           "check_shard_name", "shard_url", "SHARD_NAME"]

#: what a shard's file name in a manifest may be: letters, digits, ``.``, ``_``, ``-``, ``+``
SHARD_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,254}$")

_RANGE = re.compile(r"\{(\d+)\.\.(\d+)\}")
_CHOICE = re.compile(r"\{([^{}]*,[^{}]*)\}")


class TruncatedShard(Exception):
    """A tar stream ended or broke in the middle; ``complete`` samples were read before."""

    def __init__(self, url: str, complete: int, last_key: str | None, cause: Exception):
        self.url, self.complete, self.last_key = url, complete, last_key
        super().__init__(f"shard {redact(url)} is truncated or corrupt after {complete} "
                         f"samples (last complete key {last_key!r}): {redact(str(cause))}")


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
            raise OSError(f"pipe:{redact(self.command)} exited with status {status}")


def open_url(url: str):
    """A readable binary stream for a local path, ``file://`` URL or ``pipe:<command>``
    (e.g. ``pipe:aws s3 cp s3://bucket/coco-000000.tar -``, ``pipe:curl -s URL``)."""
    url = os.fspath(url)
    if url.startswith("pipe:"):
        return io.BufferedReader(_PipeStream(url[len("pipe:"):]), 1 << 20)
    if url.startswith("file://"):
        url = url[len("file://"):]
    elif re.match(r"^[a-z][a-z0-9+.-]*://", url):
        raise ValueError(f"unsupported shard URL {redact(url)!r}: use a local path, file:// "
                         f"or pipe:<command> (e.g. 'pipe:curl -s {redact(url)}')")
    return open(url, "rb", buffering=1 << 20)


def join_url(base: str, name: str) -> str:
    """``name`` next to ``base`` (a local path or ``file://`` URL of a file)."""
    if base.startswith("pipe:"):
        raise ValueError("shards of a manifest read through pipe: need url_template "
                         "(e.g. 'pipe:aws s3 cp s3://bucket/coco/{name} -')")
    return os.path.join(os.path.dirname(base), check_shard_name(name, base))


def check_shard_name(name, where: str = "manifest") -> str:
    """``name`` if it is a plain shard file name (:data:`SHARD_NAME`), else ``ValueError``
    naming it: a manifest must not smuggle a shell command or another path in.

    Args:
        name: a shard name from a manifest.
        where: the manifest, for the message.

    Returns:
        ``name``.
    """
    if not isinstance(name, str) or not SHARD_NAME.match(name) or ".." in name:
        raise ValueError(f"{redact(where)}: shard name {name!r} is not a plain file name "
                         f"(letters, digits, '.', '_', '-', '+'; no '..'): refusing to build a "
                         f"path or pipe: command from it")
    return name


def shard_url(template: str, name: str, where: str = "manifest") -> str:
    """A shard's URL from ``url_template`` (``{name}`` is its file name): the name is
    checked (:func:`check_shard_name`) and, in a ``pipe:`` command, shell-quoted.

    Args:
        template: e.g. ``pipe:aws s3 cp s3://bucket/coco/{name} -``.
        name: the shard's name in the manifest.
        where: the manifest, for messages.

    Returns:
        The URL.
    """
    name = check_shard_name(name, where)
    if template.startswith("pipe:"):
        return template.replace("{name}", shlex.quote(name))
    return template.replace("{name}", name)


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
