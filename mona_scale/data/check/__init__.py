"""Check a config's data before a long run.

    python -m mona_scale.data.check --config-file configs/voc/retinanet_swin_l_mona_1x.py
    python -m mona_scale.data.check --config-file ... --workers 16 [key=value overrides]

Resolves the config's train and test sets (``dataloader.{train,test}.dataset``) exactly as
training does, counts images and annotations per class, opens every image (full decode, as
training reads it) and every semantic mask, and prints a table of problems, each with its
split and path: a missing file, an undecodable image or mask, an image whose size differs
from its annotation, a label or category id out of range, an empty label, an invalid
annotation (what ``mona-shards`` rejects), a set that cannot be read at all, a semantic
segmentation image or mask without its partner, and class lists that differ between the
train and test sets or from the model's ``num_classes``.

Modules: ``resolve`` (the config's sets read as training reads them), ``diagnose`` (why a set
could not be read), ``labels`` and ``files`` (the checks), ``cli`` (arguments and tables).

Exit status: 0 when no problem was found, 1 when some were, 2 for a usage error (e.g. a
streaming config: its shards are checked by ``mona-shards verify``).
"""
from .cli import main, problem_table
from .files import check_record_files
from .labels import check_labels, compare_splits
from .resolve import Problem, SplitData, is_stream_config, model_num_classes

__all__ = ["Problem", "SplitData", "check_labels", "check_record_files", "compare_splits",
           "is_stream_config", "model_num_classes", "problem_table", "main"]
