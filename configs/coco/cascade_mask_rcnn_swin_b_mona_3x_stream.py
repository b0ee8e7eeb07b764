# cascade_mask_rcnn_swin_b_mona_3x.py reading COCO from webdataset shards (training and
# evaluation); see common/data/coco_detr_stream.py for writing the shards.
from ..common.data.coco_detr_stream import dataloader
from .cascade_mask_rcnn_swin_b_mona_3x import lr_multiplier, model, optimizer, train, tuning

train.output_dir = "./output/coco_cascade_swin_b_mona_3x_stream"
