# Paper recipe (docs/method.md, "Recipes"): Swin-L + Mona, last stage -> global average pool
# -> linear, Oxford Flowers-102; 100 epochs at total batch 16, cosine decay to 1 % after a
# 20-epoch linear warmup, AdamW 3.125e-5 / wd 0.05, gradient clipping at norm 5, drop-path
# 0.3; RandomResizedCrop 224 + flip, test resize 256 / centre crop 224 (OpenCV bilinear);
# top-1 / top-5 every epoch. Differences from the authors' code: docs/differences.md.
#   python projects/train_net.py --config-file configs/classification/flowers102_swin_l_mona.py \
#       --num-gpus 8 train.init_checkpoint=swin_large_patch4_window7_224_22k.pth
# The paper's baselines use lr 1.5625e-5:  ... tuning.method=adapter optimizer.lr=1.5625e-5
from detectron2.config import LazyCall as L
from detectron2.solver import WarmupParamScheduler
from fvcore.common.param_scheduler import CosineParamScheduler

from ..common.data.flowers102 import NUM_CLASSES, TRAIN_IMAGES, dataloader
from ..common.models.classifier_swin import model
from ..common.optim import AdamW as optimizer
from ..common.train import train
from ..common.tuning import tuning

EPOCHS = 100
ITERS_PER_EPOCH = -(-TRAIN_IMAGES // 16)  # total batch 16, last batch kept

model.num_classes = NUM_CLASSES

optimizer.lr = 3.125e-5
optimizer.weight_decay = 0.05

train.max_iter = EPOCHS * ITERS_PER_EPOCH
train.eval_period = ITERS_PER_EPOCH  # every epoch, as the authors' configs
train.checkpointer.period = 10 * ITERS_PER_EPOCH
train.clip_grad = 5.0
train.output_dir = "./output/flowers102_swin_l_mona"

# relative to train.max_iter: 20 of 100 epochs warm up, then cosine to 1 %
lr_multiplier = L(WarmupParamScheduler)(
    scheduler=L(CosineParamScheduler)(start_value=1.0, end_value=0.01),
    warmup_length=20 / EPOCHS,
    warmup_factor=1e-3,
    warmup_method="linear",
)
