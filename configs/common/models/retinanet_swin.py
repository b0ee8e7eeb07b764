# RetinaNet on Swin stages 2-4 (res3..res5) with FPN 256 and P6/P7 from the backbone's last
# stage ("extra convs on input"), as in the paper's VOC recipe.
from mona_scale.backbones import swin_channels

from detectron2 import model_zoo
from detectron2.config import LazyCall as L

from .swin import backbone, pixel_mean, pixel_std

model = model_zoo.get_config("common/models/retinanet.py").model
model.backbone.bottom_up = backbone
model.backbone.bottom_up.out_features = ["res3", "res4", "res5"]
model.backbone.bottom_up.drop_path_rate = 0.2
model.backbone.in_features = ["res3", "res4", "res5"]
# P6 from C5 (on input): res5's channels follow model.backbone.bottom_up.name / embed_dim
model.backbone.top_block.in_channels = L(swin_channels)(
    feature="res5", name="${...bottom_up.name}", embed_dim="${...bottom_up.embed_dim}",
    depths="${...bottom_up.depths}", num_heads="${...bottom_up.num_heads}")
model.pixel_mean, model.pixel_std, model.input_format = pixel_mean, pixel_std, "RGB"
