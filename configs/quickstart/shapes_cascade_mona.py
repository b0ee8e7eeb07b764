# Quickstart (CPU, minutes): the paper's Cascade Mask R-CNN recipe shrunk to a tiny Swin
# (embed 32, 2 blocks per stage) and 128-pixel synthetic shapes. Start it from the demo's
# pretrained tiny Swin:  train.init_checkpoint=output/demo/pretrain/swin_tiny_microsoft.pth
from detectron2.config import LazyCall as L
from detectron2.layers import ShapeSpec
from detectron2.solver import WarmupParamScheduler
from fvcore.common.param_scheduler import MultiStepParamScheduler

from ..coco.cascade_mask_rcnn_swin_b_mona_3x import model, optimizer, train, tuning
from ..common.data.shapes_instances import dataloader

WIDTH = 64  # FPN / head channels

model.backbone.bottom_up.update(name="swin_t", embed_dim=32, depths=[2, 2, 2, 2],
                                num_heads=[1, 2, 4, 8], drop_path_rate=0.1)
model.backbone.out_channels = WIDTH
model.roi_heads.num_classes = 3
model.proposal_generator.head.in_channels = WIDTH
model.proposal_generator.anchor_generator.sizes = [[16], [32], [64], [128], [256]]
model.proposal_generator.batch_size_per_image = 128
model.proposal_generator.pre_nms_topk = (1000, 500)
model.proposal_generator.post_nms_topk = (300, 100)
model.roi_heads.batch_size_per_image = 64
model.roi_heads.box_pooler.sampling_ratio = 2  # adaptive sampling makes ROIAlign's backward slow
model.roi_heads.mask_pooler.sampling_ratio = 2
for stage in range(3):
    model.roi_heads.box_heads[stage].update(
        input_shape=L(ShapeSpec)(channels=WIDTH, height=7, width=7), conv_dims=[WIDTH] * 4,
        fc_dims=[256])
    model.roi_heads.box_predictors[stage].input_shape = L(ShapeSpec)(channels=256)
for _head in model.roi_heads.mask_heads:
    _head.update(input_shape=L(ShapeSpec)(channels=WIDTH, width=14, height=14),
                 conv_dims=[WIDTH] * 5)

optimizer.lr = 4e-4
train.device = "cpu"
train.max_iter = 400
train.log_period = 20
train.eval_period = 0
train.checkpointer.period = 200
train.output_dir = "./output/quickstart/shapes_cascade_mona"
train.clip_grad = 5.0

lr_multiplier = L(WarmupParamScheduler)(
    scheduler=L(MultiStepParamScheduler)(values=[1.0, 0.1], milestones=[330], num_updates=400),
    warmup_length=30 / 400,
    warmup_factor=0.01,
)
