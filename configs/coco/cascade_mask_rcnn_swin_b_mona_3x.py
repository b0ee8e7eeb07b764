# Paper recipe (docs/method.md, "Recipes"): Cascade Mask R-CNN, Swin-B + Mona, COCO 2017, 36 epochs
# ("3x") at total batch 16, lr x0.1 at epochs 27 and 33, 500-iteration linear warmup,
# AdamW 1e-4 / wd 0.05, drop-path 0.3.
#   python projects/train_net.py --config-file configs/coco/cascade_mask_rcnn_swin_b_mona_3x.py \
#       --num-gpus 8 train.init_checkpoint=swin_base_patch4_window7_224_22k.pth
from detectron2.config import LazyCall as L
from detectron2.solver import WarmupParamScheduler
from fvcore.common.param_scheduler import MultiStepParamScheduler

from ..common.data.coco_detr import dataloader
from ..common.models.cascade_mask_rcnn_swin import model
from ..common.optim import AdamW as optimizer
from ..common.train import train
from ..common.tuning import tuning

ITERS_PER_EPOCH = 117266 // 16  # COCO train2017 images with annotations / total batch
EPOCHS = 36

model.backbone.bottom_up.name = "swin_b"
model.backbone.bottom_up.drop_path_rate = 0.3
model.roi_heads.num_classes = 80

optimizer.lr = 1e-4
optimizer.weight_decay = 0.05

train.max_iter = EPOCHS * ITERS_PER_EPOCH
train.eval_period = 4 * ITERS_PER_EPOCH
train.checkpointer.period = ITERS_PER_EPOCH
train.output_dir = "./output/coco_cascade_swin_b_mona_3x"

lr_multiplier = L(WarmupParamScheduler)(
    scheduler=L(MultiStepParamScheduler)(
        values=[1.0, 0.1, 0.01],
        milestones=[27 * ITERS_PER_EPOCH, 33 * ITERS_PER_EPOCH],
        num_updates=EPOCHS * ITERS_PER_EPOCH,
    ),
    warmup_length=500 / (EPOCHS * ITERS_PER_EPOCH),
    warmup_factor=0.001,
    warmup_method="linear",
)
