# Cascade Mask R-CNN on a Swin backbone as in the paper's COCO recipe: FPN 256, three
# cascade stages with 4conv1fc box heads (SyncBN), class-agnostic GIoU regression (weight
# 10), target stds 0.1/0.05/0.033 (weights 10/20/30, 5/10/15).
from detectron2 import model_zoo
from detectron2.config import LazyCall as L
from detectron2.layers import ShapeSpec
from detectron2.modeling.box_regression import Box2BoxTransform
from detectron2.modeling.matcher import Matcher
from detectron2.modeling.roi_heads import CascadeROIHeads, FastRCNNConvFCHead, FastRCNNOutputLayers

from .swin import backbone, pixel_mean, pixel_std

model = model_zoo.get_config("common/models/mask_rcnn_fpn.py").model
model.backbone.bottom_up = backbone
model.backbone.in_features = ["res2", "res3", "res4", "res5"]
model.pixel_mean, model.pixel_std, model.input_format = pixel_mean, pixel_std, "RGB"

[model.roi_heads.pop(k) for k in ["box_head", "box_predictor", "proposal_matcher"]]
model.roi_heads.update(
    _target_=CascadeROIHeads,
    box_heads=[
        L(FastRCNNConvFCHead)(
            input_shape=ShapeSpec(channels=256, height=7, width=7),
            conv_dims=[256, 256, 256, 256],
            fc_dims=[1024],
            conv_norm="SyncBN",
        )
        for _ in range(3)
    ],
    box_predictors=[
        L(FastRCNNOutputLayers)(
            input_shape=ShapeSpec(channels=1024),
            test_score_thresh=0.05,
            box2box_transform=L(Box2BoxTransform)(weights=(w1, w1, w2, w2)),
            cls_agnostic_bbox_reg=True,
            num_classes="${...num_classes}",
            box_reg_loss_type="giou",
            loss_weight={"loss_box_reg": 10.0},
        )
        for (w1, w2) in [(10, 5), (20, 10), (30, 15)]
    ],
    proposal_matchers=[
        L(Matcher)(thresholds=[th], labels=[0, 1], allow_low_quality_matches=False)
        for th in [0.5, 0.6, 0.7]
    ],
)
