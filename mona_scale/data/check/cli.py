"""The command line ``python -m mona_scale.data.check``: arguments, the checks run on the
requested splits, the exit status (see the package docstring)."""
from __future__ import annotations

import argparse
import logging
import os
import sys
from collections import Counter

from .files import check_files, unpaired_files
from .labels import _model_problem, check_labels, class_counts, compare_splits
from .nodes import is_stream_config, model_num_classes
from .problems import SPLITS, Problem, SplitData
from .report import class_table, problem_table, summary_table
from .resolve import resolve_split

EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE = 0, 1, 2


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


def _check_split(cfg, split: str, args) -> tuple[SplitData | None, list[Problem],
                                                 tuple[Counter, Counter]]:
    data, problems = resolve_split(cfg, split)
    if data is None:
        return None, problems, (Counter(), Counter())
    if not data.classes:
        data.classes = [str(k) for k in range(model_num_classes(cfg.model))]
    problems += check_labels(data)
    mask_stats = None
    if not args.skip_files:
        found, mask_stats = check_files(data, args.workers)
        problems += found + unpaired_files(data)
    problems += _model_problem(data, model_num_classes(cfg.model), args.config_file)
    return data, problems, class_counts(data, mask_stats)


def run_checks(cfg, args) -> list[Problem]:
    """Resolve and check the requested splits, print the tables, return the problems.

    Args:
        cfg: the loaded config.
        args: parsed command-line arguments (``splits``, ``workers``, ``max_rows``, ...).

    Returns:
        Every problem found.
    """
    splits, counts, problems = {}, {}, []
    for split in args.splits:
        data, found, counts[split] = _check_split(cfg, split, args)
        problems += found
        if data is not None:
            splits[split] = data
    if "train" in splits and "test" in splits:
        problems += compare_splits(splits["train"], splits["test"])
    counts = {name: counts[name] for name in splits}
    if splits:
        print(f"\nData of {args.config_file}\n\n{summary_table(splits, counts)}\n")
        print(f"Per class\n\n{class_table(splits, counts)}\n")
    for data in splits.values():
        if data.skipped_empty:
            print(f"{data.split}: {data.skipped_empty} images without annotations are "
                  f"skipped by the loader (filter_empty); not an error")
    if problems:
        print(f"\n{len(problems)} problem(s)\n\n{problem_table(problems, args.max_rows)}")
    else:
        print("\nNo problems found.")
    return problems


STREAM_MESSAGE = (
    "{config} reads webdataset shards: check them with `mona-shards verify <shard directory>` "
    "(every shard's sha256 and sample count; samples were validated when written), or run "
    "this check on the file-based config (the same name without _stream) before writing "
    "the shards.")


def main(argv: list[str] | None = None) -> int:
    """The command line: check a config's data; see the module docstring.

    Args:
        argv: arguments (default ``sys.argv[1:]``).

    Returns:
        The exit status: 0 clean, 1 problems found, 2 usage error.
    """
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("detectron2").setLevel(logging.WARNING)  # its class histogram: below
    import mona_scale  # noqa: F401  (detectron2 compatibility shims)
    from mona_scale.engine.config import load_config

    try:
        cfg = load_config(args.config_file, args.opts)
    except (FileNotFoundError, KeyError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    if is_stream_config(cfg):
        print(STREAM_MESSAGE.format(config=args.config_file), file=sys.stderr)
        return EXIT_USAGE
    return EXIT_PROBLEMS if run_checks(cfg, args) else EXIT_OK
