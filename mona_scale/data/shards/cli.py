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
import json
import logging
import os
import sys

from .budget import CorruptCounts
from .manifest import ShardSet, read_manifest
from .reader import read_shard
from .sources import SOURCES
from .writer import sha256_file, write_shards

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mona-shards", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    layouts = {
        "coco": [("--json", "json_file", "COCO instances JSON"),
                 ("--images", "image_root", "image directory")],
        "voc": [("--dirname", "dirname", "VOC2007 / VOC2012 directory"),
                ("--split", "split", "ImageSets/Main split (train, val, trainval, test)")],
        "ade20k": [("--root", "root", "ADEChallengeData2016 directory"),
                   ("--split", "split", "training or validation")],
        "flowers102": [("--root", "root", "flowers102 directory (jpg/, imagelabels.mat, "
                                          "setid.mat)"),
                       ("--split", "split", "train, val, trainval or test")],
        "imagefolder": [("--root", "root", "<root>/<class>/<image> tree")],
        "splitfile": [("--split-file", "split_file", "lines '<path> <label>'"),
                      ("--root", "root", "image paths are relative to this (default: the "
                                         "split file's directory)")],
        "voc-cls": [("--dataset", "dataset", "registered VOC detection set, e.g. "
                                             "voc_2007_trainval")],
        "catalog": [("--dataset", "dataset", "a detectron2-registered dataset name (also "
                                             "the synthetic sets)")],
    }
    for layout, options in layouts.items():
        command = commands.add_parser(layout, help=f"write {layout} shards")
        for flag, dest, text in options:
            optional = layout == "splitfile" and dest == "root"
            command.add_argument(flag, dest=dest, required=not optional, help=text)
        if layout in ("splitfile", "imagefolder"):
            command.add_argument("--classes", help="class names, comma separated")
        if layout == "splitfile":
            command.add_argument("--num-classes", type=int, default=0)
            command.add_argument("--path-format", default="{}",
                                 help="first column -> path, e.g. 'images/{}.jpg'")
            command.add_argument("--label-offset", type=int, default=0)
            command.add_argument("--ignore-extra-columns", action="store_true")
        if layout in ("splitfile", "voc-cls"):
            command.add_argument("--multi-label", action="store_true")
        if layout == "voc":
            command.add_argument("--drop-difficult", action="store_true",
                                 help="leave objects marked difficult out (training sets, "
                                      "as configs/common/data/voc.py trains)")
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
    manifest = read_manifest(location)
    base = location if not os.path.isdir(location) else os.path.join(location, "manifest.json")
    problems = []
    for shard in manifest["shards"]:
        path = os.path.join(os.path.dirname(base), shard["name"])
        if not os.path.exists(path) or sha256_file(path) != shard["sha256"]:
            problems.append(f"{shard['name']}: missing or sha256 mismatch")
    counts = CorruptCounts(0.0, "verify")
    shards = ShardSet.from_manifests(location)
    read = sum(1 for s in shards.shards for _ in read_shard(s, counts, len(shards.classes)))
    if read != shards.num_samples or counts.corrupt:
        problems.append(f"{read} valid samples read, manifest says {shards.num_samples}; "
                        f"corrupt: {counts.stats('')}")
    print(json.dumps({"shards": len(manifest["shards"]), "samples": read,
                      "problems": problems}, indent=1))
    return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    if args.command == "verify":
        return _verify(args.manifest)
    if args.command == "catalog":
        from ..synthetic import register_synthetic_datasets
        register_synthetic_datasets()
    paths = ("json_file", "image_root", "dirname", "root", "split_file")
    options = {k: os.path.abspath(v) if k in paths else v for k, v in vars(args).items()
               if k in (*paths, "split", "dataset", "multi_label", "num_classes",
                        "path_format", "label_offset", "ignore_extra_columns",
                        "drop_difficult")
               and v is not None}
    if getattr(args, "classes", None):
        options["classes"] = args.classes.split(",")
    if args.name and args.command != "catalog":
        options["name"] = args.name
    source = SOURCES[args.command](**options)
    manifest = write_shards(source, args.out, args.shard_size, prefix=args.name,
                            max_invalid=args.max_invalid, progress=not args.no_progress,
                            workers=args.workers)
    skipped = [s for shard in manifest["shards"] for s in shard["skipped"]]
    print(f"{manifest['num_samples']} samples in {len(manifest['shards'])} shards under "
          f"{args.out} ({len(skipped)} skipped)")
    for skip in skipped:
        print(f"  skipped {skip['source']}: {skip['reason']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
