# retinanet_swin_l_mona_1x.py training from webdataset shards of VOC 07+12 trainval
# (evaluation on VOC2007 test files); see common/data/voc_stream.py for writing the shards.
from ..common.data.voc_stream import dataloader
from .retinanet_swin_l_mona_1x import lr_multiplier, model, optimizer, train, tuning

train.output_dir = "./output/voc_retinanet_swin_l_mona_1x_stream"
