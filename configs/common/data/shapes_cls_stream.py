# shapes_cls.py streamed from webdataset shards (same mappers and evaluator); the shards
# are written from the synthetic files on first use under $MONA_DATASETS/shards.
from .shapes_cls import dataloader
from .stream import stream_test, stream_train, synthetic_stream

dataloader.train = stream_train(dataloader.train, synthetic_stream("shapes_cls_train", 4000, 250),
                                shuffle_buffer=256, aspect_ratio_grouping=False)
dataloader.test = stream_test(dataloader.test, synthetic_stream("shapes_cls_val", 150, 50))
dataloader.evaluator.dataset_name = "${..test.dataset.name}"
