# Image classification on a Swin backbone (docs/method.md, "Recipes"): the last stage (res5),
# global average pooling, one linear layer (normal(0, 0.01) init, as mmcls' LinearClsHead);
# drop-path 0.3 for every method, as the authors' classification configs set it.
# multi_label=True trains with binary cross-entropy over multi-hot labels.
from mona_scale.modeling import ImageClassifier

from detectron2.config import LazyCall as L

from .swin import backbone, pixel_mean, pixel_std

backbone.update(name="swin_l", drop_path_rate=0.3, out_features=["res5"])

model = L(ImageClassifier)(
    backbone=backbone,
    num_classes=1000,
    in_feature="res5",
    pixel_mean=pixel_mean,
    pixel_std=pixel_std,
    multi_label=False,
)
