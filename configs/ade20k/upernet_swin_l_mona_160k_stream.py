# upernet_swin_l_mona_160k.py reading ADE20K from webdataset shards (training and
# evaluation); see common/data/ade20k_stream.py for writing the shards.
from ..common.data.ade20k_stream import dataloader
from .upernet_swin_l_mona_160k import lr_multiplier, model, optimizer, train, tuning

train.output_dir = "./output/ade20k_upernet_swin_l_mona_160k_stream"
