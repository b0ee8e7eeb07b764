"""A small name -> object registry with errors that list the valid names."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Generic, TypeVar

T = TypeVar("T")

__all__ = ["Registry"]


class Registry(Generic[T]):
    """Objects registered under explicit names, kept in registration order.

    Args:
        kind: what the entries are (used in error messages), e.g. ``"tuning.method"``.
    """

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str, obj: T | None = None):
        """Register ``obj`` under ``name``; without ``obj`` return a decorator."""
        def add(item: T) -> T:
            if name in self._entries:
                raise KeyError(f"{self.kind} {name!r} is already registered")
            self._entries[name] = item
            return item
        return add if obj is None else add(obj)

    def get(self, name: str) -> T:
        """The entry for ``name``; ``KeyError`` listing the valid names otherwise."""
        if name not in self._entries:
            raise KeyError(f"{self.kind}={name!r} is not one of {self.names()}")
        return self._entries[name]

    def names(self) -> list[str]:
        """Registered names in registration order."""
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[tuple[str, T]]:
        return iter(self._entries.items())


