"""Helpers shared by the benchmark scripts: memory readings, per-variant subprocesses and
tables with ratios."""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys

__all__ = ["rss_mb", "peak_rss_mb", "run_worker", "print_table"]


def rss_mb() -> float:
    """Current resident set size of this process, MiB."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_worker(script: str, *args: str) -> dict:
    """Run ``script --worker ...`` in a fresh process; its last stdout line is JSON."""
    cmd = [sys.executable, script, "--worker", *args]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"benchmark worker {args} failed:\n{result.stderr[-3000:]}")
    record = json.loads(result.stdout.strip().splitlines()[-1])
    print(f"  {' '.join(args)}: {record}", file=sys.stderr, flush=True)
    return record


def print_table(title: str, rows: list[dict]) -> None:
    """Print rows (dicts with the same keys) as a table; floats with 3 decimals."""
    from tabulate import tabulate
    print(f"\n{title}")
    print(tabulate([[f"{v:.3f}" if isinstance(v, float) else v for v in r.values()]
                    for r in rows], headers=list(rows[0]), stralign="right"))
