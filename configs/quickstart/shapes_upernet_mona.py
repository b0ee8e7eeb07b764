# Quickstart (CPU, minutes): the paper's ADE20K UperNet recipe shrunk to a tiny Swin (embed
# 32, 2 blocks per stage), 64-channel heads and 128-pixel synthetic shapes (4 classes, 255 on
# edges). Start it from the demo's pretrained tiny Swin:
#   python projects/train_net.py --config-file configs/quickstart/shapes_upernet_mona.py \
#       train.init_checkpoint=output/demo/pretrain/swin_tiny_microsoft.pth [tuning.method=fixed]
from detectron2.config import LazyCall as L
from detectron2.solver import WarmupParamScheduler
from fvcore.common.param_scheduler import PolynomialDecayParamScheduler

from ..ade20k.upernet_swin_l_mona_160k import model, optimizer, train, tuning
from ..common.data.shapes_sem import dataloader

MAX_ITER = 300

model.backbone.update(name="swin_t", embed_dim=32, depths=[2, 2, 2, 2], num_heads=[1, 2, 4, 8],
                      drop_path_rate=0.1)
model.decode_head.update(num_classes=4, channels=64)
model.aux_head.channels = 32

optimizer.lr = 1e-3
train.device = "cpu"
train.max_iter = MAX_ITER
train.log_period = 20
train.eval_period = 0
train.checkpointer.period = MAX_ITER
train.output_dir = "./output/quickstart/shapes_upernet_mona"

lr_multiplier = L(WarmupParamScheduler)(
    scheduler=L(PolynomialDecayParamScheduler)(base_value=1.0, power=1.0),
    warmup_length=30 / MAX_ITER,
    warmup_factor=0.01,
)
