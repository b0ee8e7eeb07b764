# Cascade Mask R-CNN on a Swin backbone as the authors trained it for COCO (mmdet 2.11's
# CascadeRoIHead with their ConvFC box heads); docs/cascade.md maps every item to this file.
#   RPN: 2000 proposals after NMS in training (1000 at test), SmoothL1 beta 1/9, anchors
#        crossing the image border ignored.
#   RoI heads (StagewiseMaskCascadeROIHeads): 3 stages, IoU 0.5 / 0.6 / 0.7, each resampling
#        512 RoIs at <= 25 % positives with the ground truth added; 4conv1fc box heads
#        (SyncBN), class-specific GIoU regression (weight 10) with target stds
#        0.1/0.2, 0.05/0.1, 0.033/0.067 (weights = 1/std); one mask head per stage, averaged
#        at test; stage loss weights 1 / 0.5 / 0.25.
# detectron2's own cascade instead (one sampling, class-agnostic refinement, one mask head):
#   model.roi_heads = detectron2_cascade(model.roi_heads)   (see docs/cascade.md and
#   configs/coco/cascade_mask_rcnn_swin_b_mona_3x_d2cascade.py)
import copy

from mona_scale.modeling import StagewiseMaskCascadeROIHeads

from detectron2 import model_zoo
from detectron2.config import LazyCall as L
from detectron2.layers import ShapeSpec
from detectron2.modeling.box_regression import Box2BoxTransform
from detectron2.modeling.matcher import Matcher
from detectron2.modeling.roi_heads import (
    CascadeROIHeads,
    FastRCNNConvFCHead,
    FastRCNNOutputLayers,
)

from .swin import backbone, pixel_mean, pixel_std

# mmdet's bbox_coder target_stds per stage (x, y, w, h); detectron2's weights are 1 / std
TARGET_STDS = [(0.1, 0.2), (0.05, 0.1), (0.033, 0.067)]

model = model_zoo.get_config("common/models/mask_rcnn_fpn.py").model
model.backbone.bottom_up = backbone
model.backbone.in_features = ["res2", "res3", "res4", "res5"]
model.pixel_mean, model.pixel_std, model.input_format = pixel_mean, pixel_std, "RGB"

model.proposal_generator.update(
    post_nms_topk=(2000, 1000),
    box_reg_loss_type="smooth_l1",
    smooth_l1_beta=1.0 / 9.0,
    anchor_boundary_thresh=0,
)

_mask_head = model.roi_heads.pop("mask_head")
[model.roi_heads.pop(k) for k in ["box_head", "box_predictor", "proposal_matcher"]]
model.roi_heads.update(
    _target_=StagewiseMaskCascadeROIHeads,
    batch_size_per_image=512,
    positive_fraction=0.25,
    proposal_append_gt=True,
    stage_loss_weights=[1.0, 0.5, 0.25],
    box_heads=[
        L(FastRCNNConvFCHead)(
            input_shape=L(ShapeSpec)(channels=256, height=7, width=7),
            conv_dims=[256, 256, 256, 256],
            fc_dims=[1024],
            conv_norm="SyncBN",
        )
        for _ in range(3)
    ],
    box_predictors=[
        L(FastRCNNOutputLayers)(
            input_shape=L(ShapeSpec)(channels=1024),
            test_score_thresh=0.05,
            box2box_transform=L(Box2BoxTransform)(
                weights=(1 / std_xy, 1 / std_xy, 1 / std_wh, 1 / std_wh)),
            cls_agnostic_bbox_reg=False,
            num_classes="${...num_classes}",
            box_reg_loss_type="giou",
            loss_weight={"loss_box_reg": 10.0},
        )
        for (std_xy, std_wh) in TARGET_STDS
    ],
    proposal_matchers=[
        L(Matcher)(thresholds=[th], labels=[0, 1], allow_low_quality_matches=False)
        for th in [0.5, 0.6, 0.7]
    ],
    mask_heads=[copy.deepcopy(_mask_head) for _ in range(3)],
)
for _head in model.roi_heads.mask_heads:
    _head.num_classes = "${...num_classes}"



def detectron2_cascade(roi_heads):
    """detectron2's ``CascadeROIHeads`` built from the same nodes (box heads, predictors with
    class-agnostic regression, matchers, stage 0's mask head): one sampling before stage 0,
    the refined boxes only relabelled in later stages, one mask head, unweighted stage
    losses with the pooled features' gradient scaled by 1/3, test scores averaged as
    probabilities. Use in a config:  ``model.roi_heads = detectron2_cascade(model.roi_heads)``.

    Args:
        roi_heads: the ``StagewiseMaskCascadeROIHeads`` node of this file (not modified).

    Returns:
        A new ``CascadeROIHeads`` node.
    """
    node = copy.deepcopy(roi_heads)
    node._target_ = CascadeROIHeads
    node.mask_head = node.pop("mask_heads")[0]
    node.mask_head.num_classes = "${..num_classes}"
    node.pop("stage_loss_weights")
    for predictor in node.box_predictors:
        predictor.cls_agnostic_bbox_reg = True
    return node
