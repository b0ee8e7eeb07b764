# shapes_instances.py streamed from webdataset shards (same mappers and evaluator); the
# shards are written from the synthetic files on first use under $MONA_DATASETS/shards.
from .shapes_instances import dataloader
from .stream import stream_test, stream_train, synthetic_stream

dataloader.train = stream_train(dataloader.train,
                                synthetic_stream("shapes_instances_train", 400, 32),
                                shuffle_buffer=64)
dataloader.test = stream_test(dataloader.test, synthetic_stream("shapes_instances_val", 80, 16))
