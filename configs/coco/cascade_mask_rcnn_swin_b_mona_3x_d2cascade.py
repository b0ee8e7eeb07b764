# cascade_mask_rcnn_swin_b_mona_3x.py with detectron2's own CascadeROIHeads in place of the
# authors' (mmdet) cascade: one sampling before stage 0, class-agnostic refinement, one mask
# head, unweighted stage losses. docs/cascade.md lists what changes.
from ..common.models.cascade_mask_rcnn_swin import detectron2_cascade
from .cascade_mask_rcnn_swin_b_mona_3x import (
    dataloader,
    lr_multiplier,
    model,
    optimizer,
    train,
    tuning,
)

model.roi_heads = detectron2_cascade(model.roi_heads)
train.output_dir = "./output/coco_cascade_swin_b_mona_3x_d2cascade"
