# shapes_cls_pretrain.py (the demo's stage 1) reading webdataset shards, written from the
# synthetic set on first use: the same model, recipe, mappers and evaluation.
from ..common.data.shapes_cls_stream import dataloader
from .shapes_cls_pretrain import lr_multiplier, model, optimizer, train, tuning

train.output_dir = "./output/quickstart/shapes_cls_pretrain_stream"
