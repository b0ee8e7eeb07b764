# oxford_pets_swin_l_mona.py reading its images from webdataset shards (training and evaluation);
# see common/data/oxford_pets_stream.py for writing the shards.
from ..common.data.oxford_pets_stream import dataloader
from .oxford_pets_swin_l_mona import lr_multiplier, model, optimizer, train, tuning

train.output_dir = "./output/oxford_pets_swin_l_mona_stream"
