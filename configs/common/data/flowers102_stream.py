# Oxford Flowers-102 streamed from webdataset shards (flowers102.py's transforms). Write:
#   mona-shards splitfile --split-file datasets/flowers102/meta/trainval.txt \
#       --root datasets/flowers102 --num-classes 102 --shard-size 50 \
#       --out datasets/shards/flowers102_trainval
#   (the same with meta/test.txt -> datasets/shards/flowers102_test)
from .flowers102 import NUM_CLASSES, TRAIN_IMAGES, dataloader
from .stream import stream_splits

stream_splits(dataloader, "shards/flowers102_trainval", "shards/flowers102_test",
              aspect_ratio_grouping=False)
