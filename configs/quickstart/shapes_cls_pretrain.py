# Stage 1 of the demo: "pretrain" a tiny Swin (embed 32, 2 blocks per stage) by full
# fine-tuning from scratch on the synthetic shape-classification set; the demo then
# exports its backbone as a Microsoft-format checkpoint for the Mona detection stage.
from mona_scale.modeling import ImageClassifier

from detectron2.config import LazyCall as L
from detectron2.solver import WarmupParamScheduler
from fvcore.common.param_scheduler import CosineParamScheduler

from ..common.data.shapes_cls import dataloader
from ..common.models.swin import backbone
from ..common.optim import AdamW as optimizer
from ..common.train import train
from ..common.tuning import tuning

tuning.method = "full"
backbone.update(name="swin_t", embed_dim=32, depths=[2, 2, 2, 2], num_heads=[1, 2, 4, 8],
                drop_path_rate=0.1)
model = L(ImageClassifier)(backbone=backbone, num_classes=3, in_feature="res5")

optimizer.lr = 3e-4
train.device = "cpu"
train.max_iter = 800
train.log_period = 20
train.eval_period = 0
train.checkpointer.period = 800
train.output_dir = "./output/quickstart/shapes_cls_pretrain"

lr_multiplier = L(WarmupParamScheduler)(
    scheduler=L(CosineParamScheduler)(start_value=1.0, end_value=0.01),
    warmup_length=40 / 800,
    warmup_factor=0.01,
)
