# shapes_sem.py streamed from webdataset shards (same mappers and SemSegEvaluator, which
# reads the ground-truth masks from the shards); written from the synthetic files on first
# use under $MONA_DATASETS/shards.
from .shapes_sem import dataloader
from .stream import stream_test, stream_train, synthetic_stream

dataloader.train = stream_train(dataloader.train, synthetic_stream("shapes_sem_train", 400, 32),
                                shuffle_buffer=64)
dataloader.test = stream_test(dataloader.test, synthetic_stream("shapes_sem_val", 80, 16))
