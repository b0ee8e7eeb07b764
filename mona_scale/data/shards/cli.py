"""``mona-shards``: write datasets as webdataset shards, or verify a shard set.

    mona-shards coco --json annotations/instances_train2017.json --images train2017 \\
        --out shards/coco_train2017 --shard-size 1000
    mona-shards voc --dirname VOC2007 --split trainval --out shards/voc2007_trainval
    mona-shards ade20k --root ADEChallengeData2016 --split training --out shards/ade_train
    mona-shards imagefolder --root flowers/train --out shards/flowers_train
    mona-shards flowers102 --root flowers102 --split trainval --out shards/flowers102_trainval
    mona-shards splitfile --split-file pets/annotations/trainval.txt --root pets \\
        --path-format 'images/{}.jpg' --label-offset -1 --ignore-extra-columns \\
        --num-classes 37 --out shards/pets_trainval
    mona-shards voc-cls --dataset voc_2007_trainval --out shards/voc2007_cls_trainval
    mona-shards catalog --dataset coco_2017_val --out shards/coco_val2017
    mona-shards verify shards/coco_train2017/manifest.json

Re-running a writer resumes: finished shards are kept, a partial one is rewritten.
"""
from __future__ import annotations

import argparse
import inspect
import json
import logging
import os

from .budget import CorruptCounts
from .manifest import ShardSet
from .reader import read_shard
from .sources import SOURCES
from .writer import sha256_file, write_shards

_PATH = os.path.abspath
#: a source function's parameter -> its flag, help and type (None: a switch); each layout
#: gets the options of its function's parameters, required where they have no default, and
#: the function's docstring as its description
_OPTIONS = {
    "json_file": ("--json", "COCO instances JSON", _PATH),
    "image_root": ("--images", "image directory", _PATH),
    "dirname": ("--dirname", "VOC2007 / VOC2012 directory", _PATH),
    "root": ("--root", "the dataset's directory (see above)", _PATH),
    "split": ("--split", "the split (see above)", str),
    "split_file": ("--split-file", "lines '<path> <label>'", _PATH),
    "dataset": ("--dataset", "a detectron2-registered dataset name (see above)", str),
    "classes": ("--classes", "class names, comma separated", lambda text: text.split(",")),
    "num_classes": ("--num-classes", "number of classes (multi-label files)", int),
    "path_format": ("--path-format", "first column -> path, e.g. 'images/{}.jpg'", str),
    "label_offset": ("--label-offset", "added to every label", int),
    "ignore_extra_columns": ("--ignore-extra-columns", "ignore columns after the label", None),
    "multi_label": ("--multi-label", "several labels per image (multi-hot)", None),
    "drop_difficult": ("--drop-difficult", "leave objects marked difficult out", None),
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mona-shards", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    for layout, source in SOURCES.items():
        command = commands.add_parser(layout, help=f"write {layout} shards",
                                      description=inspect.getdoc(source))
        for param in inspect.signature(source).parameters.values():
            if param.name in _OPTIONS:
                flag, text, kind = _OPTIONS[param.name]
                typed = {"action": "store_true"} if kind is None else {"type": kind}
                command.add_argument(flag, dest=param.name, help=text, default=argparse.SUPPRESS,
                                     required=param.default is param.empty, **typed)
        command.add_argument("--out", required=True, help="output directory")
        command.add_argument("--name", help="dataset name and shard prefix")
        command.add_argument("--shard-size", type=int, default=1000, help="samples per shard")
        command.add_argument("--max-invalid", type=float, default=0.001,
                             help="allowed fraction of invalid samples (skipped, reported)")
        command.add_argument("--workers", type=int, default=1,
                             help="processes writing shards in parallel")
        command.add_argument("--no-progress", action="store_true")
    verify = commands.add_parser("verify", help="check a shard set's sha256 and samples")
    verify.add_argument("manifest")
    return parser


def _verify(location: str) -> int:
    shards = ShardSet.from_manifests(_PATH(location))
    problems = [f"{s.name}: missing or sha256 mismatch" for s in shards.shards
                if not os.path.exists(s.url) or sha256_file(s.url) != s.sha256]
    counts = CorruptCounts(0.0, "verify")
    read = sum(1 for s in shards.shards for _ in read_shard(s, counts, len(shards.classes)))
    if read != shards.num_samples or counts.corrupt:
        problems.append(f"{read} valid samples read, manifest says {shards.num_samples}; "
                        f"corrupt: {counts.stats('')}")
    print(json.dumps({"shards": len(shards.shards), "samples": read, "problems": problems},
                     indent=1))
    return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    """Run ``mona-shards`` with ``argv`` (default: the command line); return the exit code."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    if args.command == "verify":
        return _verify(args.manifest)
    if args.command == "catalog":
        from ..synthetic import register_synthetic_datasets
        register_synthetic_datasets()
    params = inspect.signature(SOURCES[args.command]).parameters
    source = SOURCES[args.command](**{k: v for k, v in vars(args).items() if k in params})
    manifest = write_shards(source, args.out, args.shard_size, prefix=args.name,
                            max_invalid=args.max_invalid, progress=not args.no_progress,
                            workers=args.workers)
    skipped = [s for shard in manifest["shards"] for s in shard["skipped"]]
    print(f"{manifest['num_samples']} samples in {len(manifest['shards'])} shards under "
          f"{args.out} ({len(skipped)} skipped)")
    for skip in skipped:
        print(f"  skipped {skip['source']}: {skip['reason']}")
    return 0
