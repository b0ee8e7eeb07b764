"""UperNet heads and the semantic-segmentation meta-architecture on a tiny Swin: structure,
output sizes on odd inputs, exact losses (ignore label, auxiliary weight), SyncBN on CPU."""
from __future__ import annotations

from mona_scale.engine.strategies.ddp import cpu_sync_batchnorm
from mona_scale.modeling import EncoderDecoderSegmenter, FCNHead, UPerHead, feature_shapes

import pytest
import torch
import torch.nn.functional as F
from detectron2.layers import NaiveSyncBatchNorm
from torch import nn

TINY_CHANNELS = [32, 64, 128, 256]
NUM_CLASSES = 5


def make_model(tiny_swin, channels=TINY_CHANNELS, norm="BN", aux=True, tuning="mona"):
    shapes = feature_shapes(channels)
    decode = UPerHead(shapes, NUM_CLASSES, channels=16, norm=norm)
    aux_head = FCNHead(shapes, NUM_CLASSES, channels=8, norm=norm) if aux else None
    return EncoderDecoderSegmenter(tiny_swin(tuning), decode, aux_head)


def inputs(sizes, labels=True, seed=0):
    generator = torch.Generator().manual_seed(seed)
    batch = []
    for h, w in sizes:
        x = {"image": torch.randint(0, 256, (3, h, w), generator=generator).float()}
        if labels:
            x["sem_seg"] = torch.randint(0, NUM_CLASSES, (h, w), generator=generator)
        batch.append(x)
    return batch


def test_upernet_structure_follows_the_paper():
    head = UPerHead(feature_shapes([192, 384, 768, 1536]), 150)
    assert [branch[0].output_size for branch in head.ppm.branches] == [1, 2, 3, 6]
    assert len(head.lateral_convs) == len(head.fpn_convs) == 3
    assert head.ppm_bottleneck.in_channels == 1536 + 4 * 512
    assert head.fpn_bottleneck.in_channels == 4 * 512 and head.fpn_bottleneck.out_channels == 512
    assert isinstance(head.dropout, nn.Dropout2d) and head.dropout.p == 0.1
    assert head.predictor.out_channels == 150
    aux = FCNHead(feature_shapes([192, 384, 768, 1536]), 150)
    assert aux.in_features == ["res4"] and aux.convs[0].in_channels == 768
    assert aux.convs[0].out_channels == 256 and len(aux.convs) == 1
    assert isinstance(head.ppm_bottleneck.norm, nn.SyncBatchNorm)  # "SyncBN" by default
    assert head.ppm_bottleneck.bias is None  # conv + norm: no bias


def test_head_outputs_are_at_stride_4_for_odd_sizes(tiny_swin):
    model = make_model(tiny_swin).eval()
    features = model.backbone(torch.zeros(1, 3, 97, 130))
    assert model.decode_head(features).shape == (1, NUM_CLASSES, 25, 33)
    assert model.aux_head(features).shape == (1, NUM_CLASSES, 7, 9)


@pytest.mark.parametrize("size", [(97, 130), (64, 64), (33, 71)])
def test_inference_returns_logits_at_the_original_size(tiny_swin, size):
    model = make_model(tiny_swin).eval()
    batch = inputs([size, (48, 40)], labels=False)
    batch[0].update(height=2 * size[0] + 1, width=3 * size[1])  # resized by the mapper
    with torch.no_grad():
        out = model(batch)
    assert out[0]["sem_seg"].shape == (NUM_CLASSES, 2 * size[0] + 1, 3 * size[1])
    assert out[1]["sem_seg"].shape == (NUM_CLASSES, 48, 40)  # no height/width: input size
    with torch.no_grad():  # one image: its logits at stride 4, resized to its original size
        alone = model(batch[:1])[0]["sem_seg"]
        image = (batch[0]["image"] - model.pixel_mean) / model.pixel_std
        logits = model.decode_head(model.backbone(image[None]))
    expected = F.interpolate(F.interpolate(logits, size=size, mode="bilinear"),
                             size=alone.shape[1:], mode="bilinear")[0]
    assert torch.allclose(alone, expected, atol=1e-5)


def test_losses_are_cross_entropy_with_ignore_and_weighted_aux(tiny_swin):
    model = make_model(tiny_swin).train()
    for m in model.modules():  # deterministic: no dropout, drop-path
        if isinstance(m, (nn.Dropout, nn.Dropout2d)):
            m.p = 0.0
    batch = inputs([(97, 130), (90, 130)])
    batch[0]["sem_seg"][:40] = 255
    losses = model(batch)
    assert set(losses) == {"loss_sem_seg", "loss_aux"}
    # the same computation by hand: pad labels with 255, upsample logits, mean over EVERY
    # pixel of the padded batch, ignored ones as zero (mmseg 0.11's reduction)
    images = torch.zeros(2, 3, 97, 130)
    for i, x in enumerate(batch):
        h, w = x["image"].shape[1:]
        images[i, :, :h, :w] = (x["image"] - model.pixel_mean) / model.pixel_std
    target = torch.full((2, 97, 130), 255)
    target[0] = batch[0]["sem_seg"]
    target[1, :90] = batch[1]["sem_seg"]
    torch.manual_seed(0)
    features = model.backbone(images)
    for head, key, weight in [(model.decode_head, "loss_sem_seg", 1.0),
                              (model.aux_head, "loss_aux", 0.4)]:
        logits = F.interpolate(head(features), size=(97, 130), mode="bilinear",
                               align_corners=False)
        per_pixel = F.cross_entropy(logits, target, ignore_index=255, reduction="none")
        expected = weight * per_pixel.sum() / (2 * 97 * 130)
        assert torch.allclose(losses[key], expected, rtol=1e-4), key
    sum(losses.values()).backward()
    assert model.decode_head.predictor.weight.grad.abs().sum() > 0
    assert model.aux_head.predictor.weight.grad.abs().sum() > 0


def test_fully_ignored_batch_gives_zero_loss_not_nan(tiny_swin):
    model = make_model(tiny_swin, aux=False).train()
    batch = inputs([(64, 64), (64, 64)])
    for x in batch:
        x["sem_seg"][:] = 255
    losses = model(batch)
    assert set(losses) == {"loss_sem_seg"} and losses["loss_sem_seg"].item() == 0.0


def test_head_channels_must_match_the_backbone(tiny_swin):
    with pytest.raises(ValueError, match=r"model.decode_head: feature 'res2' has 32 channels"):
        make_model(tiny_swin, channels=[192, 384, 768, 1536])


def test_syncbn_trains_in_one_process_and_becomes_naive_syncbn_on_cpu(tiny_swin):
    model = make_model(tiny_swin, norm="SyncBN").train()
    model(inputs([(64, 64), (64, 64)]))["loss_sem_seg"].backward()  # no process group
    model = cpu_sync_batchnorm(model)  # what train.strategy=ddp does without CUDA
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert norms and all(isinstance(m, NaiveSyncBatchNorm) for m in norms)
    assert torch.isfinite(model(inputs([(64, 64), (64, 64)]))["loss_aux"])


def test_ade20k_paper_config_encodes_the_recipe():
    from mona_scale.data.seg_transforms import ResizeRatioRange
    from mona_scale.engine.config import load_config
    from mona_scale.engine.model_protocol import find_backbone

    from detectron2.config import instantiate

    cfg = load_config("configs/ade20k/upernet_swin_l_mona_160k.py")
    assert (cfg.optimizer.lr, cfg.optimizer.weight_decay) == (3e-4, 0.01)
    assert cfg.train.max_iter == 160000 and cfg.dataloader.train.total_batch_size == 16
    schedule = instantiate(cfg.lr_multiplier)
    assert schedule(0.0) == pytest.approx(1e-6)  # linear warmup from 1e-6
    assert schedule(1500 / 160000) == pytest.approx(1 - 1500 / 160000)  # warmup ends
    assert schedule(0.5) == pytest.approx(0.5) and schedule(0.999) == pytest.approx(0.001)
    augs = cfg.dataloader.train.mapper.augmentations
    assert augs[0]._target_ is ResizeRatioRange and tuple(augs[0].ratio_range) == (0.5, 2.0)
    assert tuple(augs[1].crop_size) == (512, 512) and augs[1].single_category_max_area == 0.75
    assert cfg.dataloader.test.mapper.augmentations[0].max_size == 2048
    with torch.device("meta"):
        model = instantiate(cfg.model)  # Swin-L channels match the heads' input_shape
    backbone = find_backbone(model)
    assert backbone.tuning_method == "mona" and backbone.blocks[-1].drop_path.rate == 0.2
    # the authors' Swin-L Mona count
    assert sum(p.numel() for p in backbone.parameters() if p.requires_grad) == 5_267_712
    assert model.decode_head.predictor.out_channels == model.aux_head.predictor.out_channels == 150
    assert model.aux_head.in_features == ["res4"] and model.aux_weight == 0.4
    assert model.ignore_value == 255 and model.decode_head.fpn_bottleneck.out_channels == 512
