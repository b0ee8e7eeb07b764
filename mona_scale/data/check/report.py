"""The check's tables: a summary per split, counts per class, the problems."""
from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from tabulate import tabulate

from .problems import Problem, SplitData


def class_table(splits: dict[str, SplitData], counts: dict[str, tuple[Counter, Counter]]
                ) -> str:
    """The per-class table (one row per class index; columns per split).

    Args:
        splits: resolved splits by name.
        counts: :func:`class_counts` per split.

    Returns:
        The table text.
    """
    some = next(iter(splits.values()))
    unit = "pixels" if some.task == "sem_seg" else (
        "annotations" if some.task == "detection" else "labels")
    classes = max((s.classes for s in splits.values()), key=len)
    indices = set(range(len(classes)))
    for images, per_class in counts.values():
        indices |= set(per_class) | set(images)
    headers = ["id", "class"]
    for name in splits:
        headers += [f"{name} images", f"{name} {unit}"]
    rows = []
    for k in sorted(indices):
        row = [k, classes[k] if 0 <= k < len(classes) else "(out of range)"]
        for name in splits:
            images, per_class = counts[name]
            row += [images[k], per_class[k]]
        rows.append(row)
    return tabulate(rows, headers=headers, tablefmt="pipe")


def summary_table(splits: dict[str, SplitData], counts: dict[str, tuple[Counter, Counter]]
                  ) -> str:
    """One row per split: task, images checked, annotations, empty images."""
    rows = []
    for name, data in splits.items():
        rows.append([name, ", ".join(data.names) or data.source, data.task, len(data.records),
                     sum(counts[name][1].values()), len(data.classes), data.empty,
                     data.skipped_empty])
    return tabulate(rows, headers=["split", "dataset", "task", "images",
                                   "annotations (sem_seg: pixels)",
                                   "classes", "without annotations",
                                   "skipped (no annotations)"], tablefmt="pipe")


def problem_table(problems: Sequence[Problem], max_rows: int = 50) -> str:
    """The problems as a table, the first ``max_rows`` of them, then a count of the rest.

    Args:
        problems: all problems found.
        max_rows: rows printed (0: all).

    Returns:
        The table text, with a per-kind count.
    """
    shown = problems if max_rows <= 0 else problems[:max_rows]
    text = tabulate([[p.split, p.kind, p.path, p.detail] for p in shown],
                    headers=["split", "problem", "path", "detail"], tablefmt="pipe")
    if len(shown) < len(problems):
        text += f"\n... and {len(problems) - len(shown)} more (--max-rows 0 prints all)"
    kinds = Counter((p.split, p.kind) for p in problems)
    text += "\n" + ", ".join(f"{n} {kind} ({split})" for (split, kind), n in kinds.items())
    return text
