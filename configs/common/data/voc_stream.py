# Pascal VOC 07+12 trainval streamed from webdataset shards (voc.py's augmentation).
# Evaluation stays file-based: detectron2's PascalVOCDetectionEvaluator reads the VOC2007
# test annotation XMLs from disk. Write the shards once:
#   mona-shards voc --dirname datasets/VOC2007 --split trainval \
#       --out datasets/shards/voc2007_trainval
#   mona-shards voc --dirname datasets/VOC2012 --split trainval \
#       --out datasets/shards/voc2012_trainval
# Unlike voc.py's training set, these shards keep the objects marked difficult (see
# docs/differences.md, "Streamed VOC training").
from .stream import shards, stream_train
from .voc import dataloader

dataloader.train = stream_train(dataloader.train, shards(
    "voc_0712_trainval_stream",
    ["shards/voc2007_trainval", "shards/voc2012_trainval"]))
