"""Training-loss and evaluation curves of several runs in one PNG.

    python -m mona_scale.plot output/demo/cascade_mona output/demo/cascade_fixed \
        --output convergence.png [--metrics bbox/AP segm/AP] [--smooth 20]

Reads each run's ``metrics.json`` (detectron2's JSONWriter format). The left panel shows
``total_loss`` (moving average), the right panel the evaluation metrics over iterations.
"""
from __future__ import annotations

import argparse
import json
import os

import numpy as np

__all__ = ["read_metrics", "plot_runs", "main"]

DEFAULT_METRICS = ("bbox/AP", "segm/AP", "sem_seg/mIoU", "classification/top1")


def read_metrics(run_dir: str) -> list[dict]:
    """The records of ``<run_dir>/metrics.json``; ``FileNotFoundError`` naming it."""
    path = os.path.join(run_dir, "metrics.json")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} does not exist: is {run_dir!r} a training output "
                                f"directory?")
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def _series(records: list[dict], key: str) -> tuple[np.ndarray, np.ndarray]:
    points = [(r["iteration"], r[key]) for r in records if key in r and "iteration" in r]
    if not points:
        return np.array([]), np.array([])
    its, values = zip(*points, strict=True)
    return np.asarray(its), np.asarray(values, dtype=float)


def _smooth(values: np.ndarray, window: int) -> np.ndarray:
    if window <= 1 or len(values) < window:
        return values
    kernel = np.ones(window) / window
    head = np.cumsum(values[:window - 1]) / np.arange(1, window)
    return np.concatenate([head, np.convolve(values, kernel, mode="valid")])


def plot_runs(run_dirs: list[str], output: str, metrics=None, smooth: int = 20,
              labels=None) -> str:
    """Draw the loss and metric curves of ``run_dirs`` into ``output`` (PNG).

    Args:
        run_dirs: training output directories.
        output: the PNG path.
        metrics: evaluation keys to draw (default: those of DEFAULT_METRICS present).
        smooth: moving-average window of the loss.
        labels: legend names (default: directory names).

    Returns:
        ``output``.
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = {label: read_metrics(d) for label, d in zip(
        labels or [os.path.basename(os.path.normpath(d)) for d in run_dirs], run_dirs,
        strict=True)}
    present = {k for records in runs.values() for r in records for k in r}
    metrics = [m for m in (metrics or DEFAULT_METRICS) if m in present]
    fig, (loss_ax, eval_ax) = plt.subplots(1, 2, figsize=(11, 4))
    for label, records in runs.items():
        its, loss = _series(records, "total_loss")
        loss_ax.plot(its, _smooth(loss, smooth), label=label)
        for metric in metrics:
            its, values = _series(records, metric)
            eval_ax.plot(its, values, marker="o", label=f"{label} {metric}")
    loss_ax.set(title=f"training loss (moving average {smooth})", xlabel="iteration",
                ylabel="total_loss")
    eval_ax.set(title="evaluation", xlabel="iteration", ylabel="metric")
    for ax in (loss_ax, eval_ax):
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(output, dpi=100)
    plt.close(fig)
    return output


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="training output directories")
    parser.add_argument("--output", default="curves.png")
    parser.add_argument("--metrics", nargs="*", default=None)
    parser.add_argument("--smooth", type=int, default=20)
    parser.add_argument("--labels", nargs="*", default=None)
    args = parser.parse_args(argv)
    print(plot_runs(args.runs, args.output, args.metrics, args.smooth, args.labels))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
