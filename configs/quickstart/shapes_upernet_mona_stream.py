# shapes_upernet_mona.py reading webdataset shards, written from the synthetic set on first
# use: the same model, recipe, mappers and evaluation.
from ..common.data.shapes_sem_stream import dataloader
from .shapes_upernet_mona import lr_multiplier, model, optimizer, train, tuning

train.output_dir = "./output/quickstart/shapes_upernet_mona_stream"
