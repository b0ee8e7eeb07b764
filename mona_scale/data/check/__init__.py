"""Check a config's data before a long run.

    python -m mona_scale.data.check --config-file configs/voc/retinanet_swin_l_mona_1x.py
    python -m mona_scale.data.check --config-file ... --workers 16 [key=value overrides]

Resolves the config's train and test sets (``dataloader.{train,test}.dataset``) exactly as
training does, counts images and annotations per class, opens every image (full decode, as
training reads it) and every semantic mask, and prints a table of problems, each with its
split and path: a missing file, an undecodable image or mask, an image whose size differs
from its annotation, a label or category id out of range, an empty label, an invalid
annotation (what ``mona-shards`` rejects), a set that cannot be read at all, and class lists
that differ between the train and test sets or from the model's ``num_classes``.

Exit status: 0 when no problem was found, 1 when some were, 2 for a usage error (e.g. a
streaming config: its shards are checked by ``mona-shards verify``).
"""
from .cli import main, run_checks
from .diagnose import diagnose_coco_json, diagnose_voc
from .files import check_files, check_record_files, unpaired_files
from .labels import check_labels, class_counts, compare_splits
from .nodes import is_stream_config, model_num_classes
from .problems import Problem, SplitData
from .report import class_table, problem_table, summary_table
from .resolve import resolve_split

__all__ = ["Problem", "SplitData", "resolve_split", "check_labels", "check_files",
           "check_record_files", "unpaired_files", "compare_splits", "class_counts",
           "diagnose_coco_json", "diagnose_voc", "is_stream_config", "model_num_classes",
           "class_table", "summary_table", "problem_table", "run_checks", "main"]
