"""The command line ``python -m mona_scale.data.check``: arguments, the checks run on the
requested splits, the tables printed, the exit status (see the package docstring)."""
from __future__ import annotations

import argparse
import logging
import os
import sys
from collections import Counter
from collections.abc import Sequence

from mona_scale.engine.config import load_config

from tabulate import tabulate

from .files import check_files
from .labels import check_labels, class_counts, compare_splits
from .resolve import SPLITS, Problem, SplitData, is_stream_config, model_num_classes, resolve_split

EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE = 0, 1, 2
STREAM_MESSAGE = (
    "{config} reads webdataset shards: check them with `mona-shards verify <shard directory>` "
    "(every shard's sha256 and sample count; samples were validated when written), or run "
    "this check on the file-based config (the same name without _stream) before writing "
    "the shards.")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m mona_scale.data.check",
        description="Check a config's train and test data before training: per-class "
                    "counts, every image and mask opened, problems listed with their paths. "
                    "Exit status 0: no problem; 1: problems; 2: usage error.")
    parser.add_argument("--config-file", required=True, help="a LazyConfig (configs/...py)")
    parser.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1),
                        help="processes opening images (default: min(8, CPUs)); 1: none")
    parser.add_argument("--splits", nargs="+", choices=SPLITS, default=list(SPLITS),
                        help="which of the config's sets to check (default: both)")
    parser.add_argument("--max-rows", type=int, default=50,
                        help="problem rows printed (default 50; 0: all); all are counted")
    parser.add_argument("--skip-files", action="store_true",
                        help="check annotations only; do not open images and masks")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="key=value config overrides")
    return parser


def _class_table(splits: dict[str, SplitData], counts: dict[str, tuple[Counter, Counter]]
                 ) -> str:
    """One row per class index (also those out of range), images and annotations per split."""
    unit = {"sem_seg": "pixels", "detection": "annotations"}.get(
        next(iter(splits.values())).task, "labels")
    classes = max((s.classes for s in splits.values()), key=len)
    indices = set(range(len(classes))).union(*(set(c[0]) | set(c[1]) for c in counts.values()))
    rows = [[k, classes[k] if 0 <= k < len(classes) else "(out of range)"]
            + [counter[k] for name in splits for counter in counts[name]]
            for k in sorted(indices)]
    headers = ["id", "class"] + [f"{name} {what}" for name in splits for what in ("images", unit)]
    return tabulate(rows, headers=headers, tablefmt="pipe")


def _summary_table(splits: dict[str, SplitData], counts: dict[str, tuple[Counter, Counter]]
                   ) -> str:
    """One row per split: task, images checked, annotations, empty images."""
    rows = [[name, ", ".join(data.names) or data.source, data.task, len(data.records),
             sum(counts[name][1].values()), len(data.classes), data.empty, data.skipped_empty]
            for name, data in splits.items()]
    return tabulate(rows, headers=["split", "dataset", "task", "images",
                                   "annotations (sem_seg: pixels)", "classes",
                                   "without annotations", "skipped (no annotations)"],
                    tablefmt="pipe")


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
    return text + "\n" + ", ".join(f"{n} {kind} ({split})" for (split, kind), n in kinds.items())


def _run_checks(cfg, args) -> list[Problem]:
    """Resolve and check the requested splits, print the tables, return every problem."""
    num_classes = model_num_classes(cfg.model)
    splits, counts, problems = {}, {}, []
    for split in args.splits:
        data, found = resolve_split(cfg, split)
        problems += found
        if data is None:
            continue
        data.classes = data.classes or [str(k) for k in range(num_classes)]
        problems += check_labels(data)
        files, mask_stats = ([], None) if args.skip_files else check_files(data, args.workers)
        problems += files
        if data.classes_from_metadata and num_classes and len(data.classes) != num_classes:
            problems.append(Problem(split, "category mismatch", args.config_file,
                                    f"the model predicts {num_classes} classes, the {split} "
                                    f"set ({', '.join(data.names)}) has {len(data.classes)}"))
        splits[split], counts[split] = data, class_counts(data, mask_stats)
    if "train" in splits and "test" in splits:
        problems += compare_splits(splits["train"], splits["test"])
    if splits:
        print(f"\nData of {args.config_file}\n\n{_summary_table(splits, counts)}\n")
        print(f"Per class\n\n{_class_table(splits, counts)}\n")
    for data in splits.values():
        if data.skipped_empty:
            print(f"{data.split}: {data.skipped_empty} images without annotations are "
                  f"skipped by the loader (filter_empty); not an error")
    if problems:
        print(f"\n{len(problems)} problem(s)\n\n{problem_table(problems, args.max_rows)}")
    else:
        print("\nNo problems found.")
    return problems


def main(argv: list[str] | None = None) -> int:
    """The command line: check a config's data; see the package docstring.

    Args:
        argv: arguments (default ``sys.argv[1:]``).

    Returns:
        The exit status: 0 clean, 1 problems found, 2 usage error.
    """
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("detectron2").setLevel(logging.WARNING)  # its class histogram: below
    try:
        cfg = load_config(args.config_file, args.opts)
    except (FileNotFoundError, KeyError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    if is_stream_config(cfg):
        print(STREAM_MESSAGE.format(config=args.config_file), file=sys.stderr)
        return EXIT_USAGE
    return EXIT_PROBLEMS if _run_checks(cfg, args) else EXIT_OK
