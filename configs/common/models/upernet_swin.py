# UperNet on a Swin backbone as in the paper's ADE20K recipe (MONA.md section 6): pyramid
# pooling (1, 2, 3, 6) on stage 4, FPN over all four stages, 512 channels, Dropout2d 0.1,
# cross-entropy ignoring 255; auxiliary FCN head (256 channels, one conv) on stage 3 with
# loss weight 0.4. Norms are "SyncBN": plain BN in one process, synchronised under DDP
# (NaiveSyncBatchNorm on CPU/gloo).
from mona_scale.modeling import FCNHead, SemanticSegmentor, UPerHead, feature_shapes

from detectron2.config import LazyCall as L

from .swin import backbone, pixel_mean, pixel_std

backbone.update(name="swin_l", drop_path_rate=0.2)

model = L(SemanticSegmentor)(
    backbone=backbone,
    decode_head=L(UPerHead)(
        # the backbone's res2..res5 channels (Swin-L); the model checks them at build time
        input_shape=L(feature_shapes)(channels=[192, 384, 768, 1536]),
        num_classes=150,
        in_features=["res2", "res3", "res4", "res5"],
        channels=512,
        pool_scales=[1, 2, 3, 6],
        dropout=0.1,
        norm="SyncBN",
    ),
    aux_head=L(FCNHead)(
        input_shape="${..decode_head.input_shape}",
        num_classes="${..decode_head.num_classes}",
        in_feature="res4",
        channels=256,
        num_convs=1,
        dropout=0.1,
        norm="SyncBN",
    ),
    aux_weight=0.4,
    ignore_value=255,
    pixel_mean=pixel_mean,
    pixel_std=pixel_std,
)
