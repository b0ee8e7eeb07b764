# Paper recipe (docs/method.md, "Recipes"): RetinaNet on Swin-L stages 2-4 + Mona, VOC
# 07+12 (difficult objects left out of training), 12 effective epochs at batch 2, lr x0.1
# after epoch 9, no warmup, AdamW 1e-4 / wd 0.05, drop-path 0.2, patch embedding frozen
# (the authors' frozen_stages=1), 1000x600, VOC07 AP50 every 3 epochs. Differences from
# the authors' code: docs/differences.md.
#   python projects/train_net.py --config-file configs/voc/retinanet_swin_l_mona_1x.py \
#       --num-gpus 2 train.init_checkpoint=swin_large_patch4_window7_224_22k.pth
from detectron2.config import LazyCall as L
from fvcore.common.param_scheduler import MultiStepParamScheduler

from ..common.data.voc import dataloader
from ..common.models.retinanet_swin import model
from ..common.optim import AdamW as optimizer
from ..common.train import train
from ..common.tuning import tuning

ITERS_PER_EPOCH = 16551 // 2  # VOC07+12 trainval images / total batch
EPOCHS = 12

model.backbone.bottom_up.name = "swin_l"
model.num_classes = 20
tuning.frozen_stages = 1  # mmdet Swin's frozen_stages=1: the patch embedding never trains

optimizer.lr = 1e-4
optimizer.weight_decay = 0.05

train.max_iter = EPOCHS * ITERS_PER_EPOCH
train.eval_period = 3 * ITERS_PER_EPOCH
train.checkpointer.period = ITERS_PER_EPOCH
train.output_dir = "./output/voc_retinanet_swin_l_mona_1x"

lr_multiplier = L(MultiStepParamScheduler)(
    values=[1.0, 0.1], milestones=[9 * ITERS_PER_EPOCH], num_updates=EPOCHS * ITERS_PER_EPOCH)
