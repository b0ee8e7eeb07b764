# flowers102_swin_l_mona.py reading its images from webdataset shards (training and evaluation);
# see common/data/flowers102_stream.py for writing the shards.
from ..common.data.flowers102_stream import dataloader
from .flowers102_swin_l_mona import lr_multiplier, model, optimizer, train, tuning

train.output_dir = "./output/flowers102_swin_l_mona_stream"
