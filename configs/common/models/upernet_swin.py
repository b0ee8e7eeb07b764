# UperNet on a Swin backbone as in the paper's ADE20K recipe (docs/method.md, "Recipes";
# the authors' mmseg 0.11 configs): pyramid pooling (1, 2, 3, 6) on stage 4, FPN over all
# four stages, 512 channels, Dropout2d 0.1, cross-entropy ignoring 255 averaged over every
# pixel of the padded batch (mmseg 0.11); auxiliary FCN head (256 channels, one conv) on
# stage 3 with loss weight 0.4; training batches padded to the crop size (mmseg's Pad:
# image 0 after normalisation, label 255). Norms are "SyncBN": plain BN in one process,
# synchronised under DDP (NaiveSyncBatchNorm on CPU/gloo).
from mona_scale.backbones import swin_output_shape
from mona_scale.modeling import EncoderDecoderSegmenter, FCNHead, UPerHead

from detectron2.config import LazyCall as L

from .swin import backbone, pixel_mean, pixel_std

backbone.update(name="swin_l", drop_path_rate=0.2)

model = L(EncoderDecoderSegmenter)(
    backbone=backbone,
    decode_head=L(UPerHead)(
        # the backbone's output_shape() (follows model.backbone.name / embed_dim)
        input_shape=L(swin_output_shape)(
            name="${...backbone.name}", embed_dim="${...backbone.embed_dim}",
            depths="${...backbone.depths}", num_heads="${...backbone.num_heads}",
            out_features="${...backbone.out_features}"),
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
    loss_mean_over="all",  # mmseg 0.11: ignored pixels count (as zero) in the mean
    # mmseg's Pad(size=crop_size): follows the training crop of the data config
    train_pad_size="${dataloader.train.mapper.augmentations.1.crop_size}",
    pixel_mean=pixel_mean,
    pixel_std=pixel_std,
)
