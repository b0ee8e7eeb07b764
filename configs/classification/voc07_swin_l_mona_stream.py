# voc07_swin_l_mona.py reading its images from webdataset shards (training and evaluation);
# see common/data/voc07_cls_stream.py for writing the shards.
from ..common.data.voc07_cls_stream import dataloader
from .voc07_swin_l_mona import lr_multiplier, model, optimizer, train, tuning

train.output_dir = "./output/voc07_swin_l_mona_stream"
