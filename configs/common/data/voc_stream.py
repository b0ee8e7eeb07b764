# Pascal VOC 07+12 trainval streamed from webdataset shards (voc.py's augmentation).
# Evaluation stays file-based: detectron2's PascalVOCDetectionEvaluator reads the VOC2007
# test annotation XMLs from disk. Write the shards once:
#   mona-shards voc --dirname datasets/VOC2007 --split trainval --drop-difficult \
#       --out datasets/shards/voc2007_trainval
#   mona-shards voc --dirname datasets/VOC2012 --split trainval --drop-difficult \
#       --out datasets/shards/voc2012_trainval
# --drop-difficult leaves the objects marked difficult out, as voc.py's training set does.
from .stream import shards, stream_train
from .voc import dataloader

dataloader.train = stream_train(dataloader.train, shards(
    "voc_0712_trainval_stream",
    ["shards/voc2007_trainval", "shards/voc2012_trainval"]))
