# Oxford Flowers-102 streamed from webdataset shards (flowers102.py's transforms). Write:
#   mona-shards flowers102 --root datasets/flowers102 --split trainval --shard-size 50 \
#       --out datasets/shards/flowers102_trainval
#   (the same with --split test -> datasets/shards/flowers102_test)
from .flowers102 import NUM_CLASSES, TRAIN_IMAGES, dataloader
from .stream import stream_splits

stream_splits(dataloader, "shards/flowers102_trainval", "shards/flowers102_test",
              aspect_ratio_grouping=False)
