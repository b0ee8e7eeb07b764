# A Swin backbone with the run's tuning method (the ${tuning} node of the final config).
from mona_scale.modeling import build_swin

from detectron2.config import LazyCall as L

backbone = L(build_swin)(
    name="swin_b",
    tuning="${tuning}",
    drop_path_rate=0.3,
    window_size=7,
    out_features=["res2", "res3", "res4", "res5"],
    # None: the named size's; necks and heads follow the backbone (swin_output_shape)
    embed_dim=None,
    depths=None,
    num_heads=None,
)


# ImageNet statistics in RGB (Swin's pretraining)
pixel_mean = [123.675, 116.28, 103.53]
pixel_std = [58.395, 57.12, 57.375]
