# ADE20K streamed from webdataset shards, with ade20k.py's augmentation and evaluation
# (SemSegEvaluator reads the ground-truth masks from the shards). Write them once from the
# archive's layout (raw labels are stored converted: 0..149, 255 ignored):
#   mona-shards ade20k --root datasets/ADEChallengeData2016 --split training \
#       --out datasets/shards/ade20k_train --shard-size 200
#   mona-shards ade20k --root datasets/ADEChallengeData2016 --split validation \
#       --out datasets/shards/ade20k_val --shard-size 50
# Every (rank, worker) stream needs a shard: shards >= GPUs x dataloader workers.
from .ade20k import dataloader
from .stream import stream_splits

stream_splits(dataloader, "shards/ade20k_train", "shards/ade20k_val")
