# The streaming switch: turn a file-based dataloader.train / dataloader.test node into one
# that reads webdataset shards, keeping its mapper, batch size, workers and seed.
#   dataloader.train = stream_train(dataloader.train, shards("coco_2017_train_stream",
#                                                           "datasets/shards/coco_train2017"))
#   dataloader.test = stream_test(dataloader.test, shards("coco_2017_val_stream", ...))
# or both at once, each registered as "<directory name>_stream":
#   stream_splits(dataloader, "shards/coco_train2017", "shards/coco_val2017")
# Write shards with `mona-shards` (see its --help); relative manifest paths are under
# $DETECTRON2_DATASETS (default ./datasets), e.g. "shards/coco_train2017" (a directory holding
# manifest.json). Options of the stream loaders
# (shuffle_buffer, corrupt_budget, segment_samples, ...): mona_scale.data.shards.loader.
from mona_scale.data.shards import (
    build_stream_test_loader,
    build_stream_train_loader,
    shard_dataset,
    synthetic_shards,
)

from detectron2.config import LazyCall as L


def shards(name, manifests, url_template=None):
    """A shard dataset node: ``manifests`` (path(s) or pipe: URLs) registered as ``name``."""
    return L(shard_dataset)(name=name, manifests=manifests, url_template=url_template)


def synthetic_stream(name, num_images, shard_size):
    """Shards of a synthetic set, written on first use, registered as ``<name>_stream``."""
    return shards(f"{name}_stream", L(synthetic_shards)(name=name, num_images=num_images,
                                                        shard_size=shard_size))


def stream_train(node, dataset, **options):
    """``node`` (a file-based train loader) reading ``dataset`` shards instead."""
    return L(build_stream_train_loader)(
        dataset=dataset, mapper=node.mapper, total_batch_size=node.total_batch_size,
        num_workers=node.num_workers, seed="${train.seed}", **options)


def stream_test(node, dataset, **options):
    """``node`` (a file-based test loader) reading ``dataset`` shards exactly once."""
    return L(build_stream_test_loader)(dataset=dataset, mapper=node.mapper,
                                       num_workers=node.num_workers, **options)


def stream_splits(dataloader, train, test, **train_options):
    """Switch ``dataloader.train`` / ``dataloader.test`` to the shard directories ``train``
    / ``test``, registered as ``<directory name>_stream``; the evaluator follows the test
    set's name."""
    train_name, test_name = (f"{d.rstrip('/').split('/')[-1]}_stream" for d in (train, test))
    dataloader.train = stream_train(dataloader.train, shards(train_name, train), **train_options)
    dataloader.test = stream_test(dataloader.test, shards(test_name, test))
    dataloader.evaluator.dataset_name = test_name
