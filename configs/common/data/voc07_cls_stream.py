# Pascal VOC 2007 classification (single label: largest object) streamed from webdataset
# shards (voc07_cls.py's transforms). Write (add --multi-label for voc07_cls_multilabel):
#   mona-shards voc-cls --dataset voc_2007_trainval --shard-size 100 \
#       --out datasets/shards/voc2007_cls_trainval
#   mona-shards voc-cls --dataset voc_2007_test --shard-size 100 \
#       --out datasets/shards/voc2007_cls_test
from .stream import stream_splits
from .voc07_cls import NUM_CLASSES, TRAIN_IMAGES, dataloader

stream_splits(dataloader, "shards/voc2007_cls_trainval", "shards/voc2007_cls_test",
              aspect_ratio_grouping=False)
