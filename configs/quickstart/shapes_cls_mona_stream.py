# shapes_cls_mona.py reading webdataset shards, written from the synthetic set on first
# use: the same model, recipe, mappers and evaluation.
from ..common.data.stream import stream_test, stream_train, synthetic_stream
from .shapes_cls_mona import dataloader, lr_multiplier, model, optimizer, train, tuning

dataloader.train = stream_train(dataloader.train, synthetic_stream("shapes_cls_train", 4000, 250),
                                shuffle_buffer=256, aspect_ratio_grouping=False)
dataloader.test = stream_test(dataloader.test, synthetic_stream("shapes_cls_val", 150, 50))
dataloader.evaluator.dataset_name = "${..test.dataset.name}"
train.output_dir = "./output/quickstart/shapes_cls_mona_stream"
