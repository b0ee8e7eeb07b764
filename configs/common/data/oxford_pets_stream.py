# Oxford-IIIT Pets streamed from webdataset shards (oxford_pets.py's transforms). Write:
#   mona-shards splitfile --split-file datasets/oxford_pets/annotations/trainval.txt \
#       --root datasets/oxford_pets --path-format 'images/{}.jpg' --label-offset -1 \
#       --ignore-extra-columns --num-classes 37 --shard-size 100 \
#       --out datasets/shards/oxford_pets_trainval
#   (the same with annotations/test.txt -> datasets/shards/oxford_pets_test)
from .oxford_pets import NUM_CLASSES, TRAIN_IMAGES, dataloader
from .stream import stream_splits

stream_splits(dataloader, "shards/oxford_pets_trainval", "shards/oxford_pets_test",
              aspect_ratio_grouping=False)
