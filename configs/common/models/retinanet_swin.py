# RetinaNet on Swin stages 2-4 (res3..res5) with FPN 256 as in the paper's VOC recipe (the
# authors' mmdet 2.11 RetinaNet): P6 = conv(C5) ("extra convs on input") and P7 = conv(P6)
# with no ReLU in between (P6P7OnInput; detectron2's LastLevelP6P7 has one); focal and box
# losses divided by this batch's positive anchors (mmdet), not detectron2's running
# average of them; L1 box loss (smooth_l1_beta 0); docs/differences.md lists the rest.
from mona_scale.backbones import swin_channels
from mona_scale.modeling.fpn_blocks import P6P7OnInput
from mona_scale.modeling.retinanet_normalizer import RetinaNetWithNormalizer

from detectron2 import model_zoo
from detectron2.config import LazyCall as L

from .swin import backbone, pixel_mean, pixel_std

model = model_zoo.get_config("common/models/retinanet.py").model
model._target_ = RetinaNetWithNormalizer
model.loss_normalizer_momentum = 0.0  # mmdet: this batch's number of positive anchors
model.smooth_l1_beta = 0.0  # mmdet's L1Loss on the deltas
model.backbone.bottom_up = backbone
model.backbone.bottom_up.out_features = ["res3", "res4", "res5"]
model.backbone.bottom_up.drop_path_rate = 0.2
model.backbone.in_features = ["res3", "res4", "res5"]
# P6 from C5 (on input): res5's channels follow model.backbone.bottom_up.name / embed_dim
model.backbone.top_block = L(P6P7OnInput)(
    in_channels=L(swin_channels)(
        feature="res5", name="${...bottom_up.name}", embed_dim="${...bottom_up.embed_dim}",
        depths="${...bottom_up.depths}", num_heads="${...bottom_up.num_heads}"),
    out_channels="${..out_channels}",
    in_feature="res5",
    relu_before_p7=False,
)
model.pixel_mean, model.pixel_std, model.input_format = pixel_mean, pixel_std, "RGB"
