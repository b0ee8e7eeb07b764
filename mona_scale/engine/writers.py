"""Event writers and the memory hook: a readable training log line and metrics.json."""
from __future__ import annotations

import datetime
import logging
import os

import torch
from detectron2.engine import HookBase
from detectron2.utils.events import EventWriter, JSONWriter, get_event_storage

__all__ = ["LogPrinter", "MemoryHook", "default_writers", "process_memory_mb", "METRICS_FILE"]

METRICS_FILE = "metrics.json"


def process_memory_mb() -> float:
    """Peak CUDA memory if on GPU, else this process's resident set size, in MiB."""
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class MemoryHook(HookBase):
    """Puts ``memory_mb`` into the event storage after every step."""

    def after_step(self) -> None:
        self.trainer.storage.put_scalar("memory_mb", process_memory_mb(), smoothing_hint=False)


class LogPrinter(EventWriter):
    """One log line per period: iteration, ETA, losses, lr, s/iter, data time, memory.

    Args:
        max_iter: total iterations (for the ETA).
        window: iterations over which losses and times are medians.
    """

    def __init__(self, max_iter: int, window: int = 20):
        self.logger = logging.getLogger("mona_scale.train")
        self.max_iter, self.window = max_iter, window

    def write(self) -> None:
        storage = get_event_storage()
        it = storage.iter
        if it == self.max_iter:  # after training: nothing new to print
            return
        parts = [f"iter: {it + 1}/{self.max_iter}"]
        seconds = self._median(storage, "time")
        if seconds is not None:
            eta = datetime.timedelta(seconds=int(seconds * (self.max_iter - it - 1)))
            parts.insert(0, f"eta: {eta}")
        for name, hist in storage.histories().items():
            if "loss" in name:
                parts.append(f"{name}: {hist.median(self.window):.4g}")
        latest = storage.latest()
        if "lr" in latest:
            parts.append(f"lr: {latest['lr'][0]:.3g}")
        if seconds is not None:
            parts.append(f"time: {seconds:.3f} s/it")
        data = self._median(storage, "data_time")
        if data is not None:
            parts.append(f"data: {data:.3f} s")
        if "memory_mb" in latest:
            parts.append(f"mem: {latest['memory_mb'][0]:.0f} MB")
        self.logger.info("  ".join(parts))

    def _median(self, storage, key: str) -> float | None:
        try:
            return storage.history(key).median(self.window)
        except KeyError:
            return None


def default_writers(output_dir: str, max_iter: int) -> list[EventWriter]:
    """The log printer and ``metrics.json`` (detectron2's JSONWriter) under ``output_dir``."""
    os.makedirs(output_dir, exist_ok=True)
    return [LogPrinter(max_iter), JSONWriter(os.path.join(output_dir, METRICS_FILE))]
