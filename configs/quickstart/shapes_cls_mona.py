# Quickstart (CPU, minutes): the paper's classification recipe (RandomResizedCrop + flip,
# test resize / centre crop, cosine with warmup, clip 5) shrunk to a tiny Swin (embed 32,
# 2 blocks per stage) and the 64-pixel synthetic shapes (3 classes). Start it from the
# demo's pretrained tiny Swin:
#   python projects/train_net.py --config-file configs/quickstart/shapes_cls_mona.py \
#       train.init_checkpoint=output/demo/pretrain/swin_tiny_microsoft.pth [tuning.method=fixed]
from mona_scale.data import synthetic_dataset_dicts

from detectron2.config import LazyCall as L

from ..classification.flowers102_swin_l_mona import lr_multiplier, model, optimizer, train, tuning
from ..common.data.classification import dataloader

MAX_ITER = 300

model.backbone.update(name="swin_t", embed_dim=32, depths=[2, 2, 2, 2], num_heads=[1, 2, 4, 8],
                      drop_path_rate=0.1)
model.num_classes = 3

dataloader.train.dataset = L(synthetic_dataset_dicts)(name="shapes_cls_train", num_images=4000)
dataloader.train.mapper.augmentations[0].update(size=64, scale=(0.5, 1.0))
dataloader.train.total_batch_size = 32
dataloader.train.num_workers = 1
dataloader.test.dataset = L(synthetic_dataset_dicts)(name="shapes_cls_val", num_images=150)
dataloader.test.mapper.augmentations[0].short_edge_length = 73  # 64 * 256 / 224
dataloader.test.mapper.augmentations[1].size = 64
dataloader.test.num_workers = 1
dataloader.evaluator.update(dataset_name="shapes_cls_val", topk=(1,))

optimizer.lr = 1e-3
train.device = "cpu"
train.max_iter = MAX_ITER
train.log_period = 20
train.eval_period = 0
train.checkpointer.period = MAX_ITER
train.output_dir = "./output/quickstart/shapes_cls_mona"
lr_multiplier.warmup_length = 30 / MAX_ITER
