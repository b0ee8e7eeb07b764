"""Event writers and the memory hook: detectron2's console line with CPU memory, and
``metrics.json``."""
from __future__ import annotations

import logging
import os

import torch
from detectron2.engine import HookBase
from detectron2.utils.events import (
    CommonMetricPrinter,
    EventWriter,
    JSONWriter,
    get_event_storage,
)

__all__ = ["CpuMemoryMetricPrinter", "MemoryHook", "build_event_writers", "METRICS_FILE"]

METRICS_FILE = "metrics.json"


def _cpu_memory_mb() -> float:
    """This process's resident set size, in MiB."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class MemoryHook(HookBase):
    """Puts ``memory_mb`` into the event storage after every step: the peak CUDA memory on
    GPU, else this process's resident set size, in MiB."""

    def after_step(self) -> None:
        memory = (torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available()
                  else _cpu_memory_mb())
        self.trainer.storage.put_scalar("memory_mb", memory, smoothing_hint=False)


class _AppendCpuMemory(logging.LoggerAdapter):
    """Appends this process's resident set size to every message."""

    def process(self, msg, kwargs):
        return f"{msg}  cpu_mem: {_cpu_memory_mb():.0f}M", kwargs


class CpuMemoryMetricPrinter(CommonMetricPrinter):
    """detectron2's console line (ETA, iteration, median losses, times, lr, and ``max_mem``
    on CUDA) with this process's CPU memory (resident set size) appended as ``cpu_mem``.

    Args:
        max_iter: total iterations (for the ETA).
        window_size: iterations over which losses are median-smoothed.
    """

    def __init__(self, max_iter: int | None = None, window_size: int = 20):
        super().__init__(max_iter, window_size)
        self.logger = _AppendCpuMemory(self.logger, {})
        self._printed_iter: int | None = None

    def write(self) -> None:
        """Print the line, once per iteration: a run stopped early writes again after its
        last iteration, and detectron2's ETA estimate, before the iteration timer has
        times, divides by the iterations since the previous line (0 there)."""
        iteration = get_event_storage().iter
        if iteration != self._printed_iter:
            super().write()
            self._printed_iter = iteration


def build_event_writers(output_dir: str, max_iter: int) -> list[EventWriter]:
    """The console printer and ``metrics.json`` (detectron2's ``JSONWriter``) under
    ``output_dir``.

    Args:
        output_dir: the run's output directory (created if missing).
        max_iter: total iterations (for the ETA).

    Returns:
        The writers, for detectron2's ``PeriodicWriter``.
    """
    os.makedirs(output_dir, exist_ok=True)
    return [CpuMemoryMetricPrinter(max_iter), JSONWriter(os.path.join(output_dir, METRICS_FILE))]
