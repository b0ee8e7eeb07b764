"""Webdataset shards: writers for COCO, VOC, ADE20K and classification layouts, and a
resumable streaming reader that feeds each task's existing mapper.

See ``mona-shards --help`` (:mod:`.cli`, layouts in :mod:`.sources`), :mod:`.loader`
(what configs instantiate) and :mod:`.reader` (``ShardStream``: how streams are split,
seeded, shuffled and resumed).
"""
from .budget import CorruptDataError
from .loader import build_stream_test_loader, build_stream_train_loader, shard_dataset, shard_dicts
from .manifest import ShardSet
from .synthetic import synthetic_shards
from .writer import write_shards

__all__ = ["CorruptDataError", "build_stream_test_loader", "build_stream_train_loader",
           "shard_dataset", "shard_dicts", "ShardSet", "synthetic_shards", "write_shards"]
