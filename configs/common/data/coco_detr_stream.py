# COCO 2017 streamed from webdataset shards, with coco_detr.py's augmentation and
# evaluation (COCOEvaluator reads the annotations from the shards). Write them once:
#   mona-shards coco --json datasets/coco/annotations/instances_train2017.json \
#       --images datasets/coco/train2017 --out datasets/shards/coco_train2017 --shard-size 400
#   mona-shards coco --json datasets/coco/annotations/instances_val2017.json \
#       --images datasets/coco/val2017 --out datasets/shards/coco_val2017 --shard-size 100
# Every (rank, worker) stream needs a shard: shards >= GPUs x dataloader workers.
# From object storage: dataloader.train.dataset.manifests='pipe:aws s3 cp
#   s3://bucket/coco_train2017/manifest.json -' and dataloader.train.dataset.url_template=
#   'pipe:aws s3 cp s3://bucket/coco_train2017/{name} -'
from .coco_detr import dataloader
from .stream import stream_splits

stream_splits(dataloader, "shards/coco_train2017", "shards/coco_val2017")
