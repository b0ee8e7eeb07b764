"""StagewiseMaskCascadeROIHeads (mmdet 2.11's CascadeRoIHead in detectron2) and the RPN options
of the COCO recipe, on the quickstart's tiny heads (64 channels) with hand-made features,
proposals and ground truth (CPU, seconds).

Expected values come from code written here (IoU with torchvision, box decoding from the
formulas, mask probabilities and losses from the heads' layers), not from the cascade's
own methods."""
from __future__ import annotations

import math

from mona_scale.engine.config import load_config
from mona_scale.modeling import StagewiseMaskCascadeROIHeads

import pytest
import torch
import torch.nn.functional as F
from detectron2.config import instantiate
from detectron2.modeling.roi_heads import CascadeROIHeads
from detectron2.structures import BitMasks, Boxes, Instances
from detectron2.utils.events import EventStorage
from torchvision.ops import box_iou

QUICKSTART = "configs/quickstart/shapes_cascade_mona.py"
COCO = "configs/coco/cascade_mask_rcnn_swin_b_mona_3x.py"
SIZE = 128  # image side
WIDTH = 64  # the quickstart's FPN channels
NUM_CLASSES = 3
GT_BOXES = torch.tensor([[10.0, 10, 50, 60], [60, 20, 120, 90], [20, 70, 60, 120]])
GT_CLASSES = torch.tensor([0, 2, 1])
IOU_THRESHOLDS = (0.5, 0.6, 0.7)


def build_heads(**overrides) -> StagewiseMaskCascadeROIHeads:
    """The quickstart config's RoI heads, 512 RoIs per image, with one narrow convolution
    per box head and none before the mask heads' deconvolution (speed; the cascade logic
    does not depend on the head sizes) and no SyncBN."""
    node = load_config(QUICKSTART).model.roi_heads
    for head in node.box_heads:
        head.update(conv_norm="", conv_dims=[16])
    for head in node.mask_heads:
        head.conv_dims = [16]
    node.update(batch_size_per_image=512, **overrides)
    torch.manual_seed(0)
    return instantiate(node)


def features(num_images: int = 2) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    return {f"p{level}": torch.randn(num_images, WIDTH, SIZE >> level, SIZE >> level,
                                     generator=gen) for level in (2, 3, 4, 5)}


def targets(num_images: int = 2) -> list[Instances]:
    masks = torch.zeros(len(GT_BOXES), SIZE, SIZE, dtype=torch.bool)
    for mask, (x1, y1, x2, y2) in zip(masks, GT_BOXES.int().tolist(), strict=True):
        mask[y1:y2, x1:(x1 + x2) // 2] = True  # the left half of each box
        mask[(y1 + y2) // 2:y2, x1:x2] = True  # and its lower half
    return [Instances((SIZE, SIZE), gt_boxes=Boxes(GT_BOXES.clone()),
                      gt_classes=GT_CLASSES.clone(), gt_masks=BitMasks(masks))
            for _ in range(num_images)]


def random_boxes(num: int, gen: torch.Generator) -> torch.Tensor:
    xy = torch.rand(num, 2, generator=gen) * (SIZE - 20)
    wh = 8 + torch.rand(num, 2, generator=gen) * 52
    return torch.cat([xy, (xy + wh).clamp(max=SIZE)], dim=1)


def proposals(num_near=(300, 12), num_random=(400, 600)) -> list[Instances]:
    """Per image: boxes jittered around the ground truth (mostly positives) and random ones.
    Image 0 has more than 128 positives, image 1 fewer."""
    gen = torch.Generator().manual_seed(2)
    out = []
    for near, rand in zip(num_near, num_random, strict=True):
        base = GT_BOXES[torch.arange(near) % len(GT_BOXES)]
        jitter = (torch.rand(near, 4, generator=gen) - 0.5) * 8
        boxes = torch.cat([(base + jitter).clamp(0, SIZE), random_boxes(rand, gen)])
        out.append(Instances((SIZE, SIZE), proposal_boxes=Boxes(boxes),
                             objectness_logits=torch.zeros(len(boxes))))
    return out


class Spy:
    """Records what the heads' own stage methods receive and return (no behaviour change)."""

    def __init__(self, heads: StagewiseMaskCascadeROIHeads):
        self.stage_inputs, self.sampled, self.predictions = [], [], []
        sample, run = heads.label_and_sample_stage, heads._run_stage

        def sample_spy(props, targs, stage):
            self.stage_inputs.append([p.proposal_boxes.tensor.clone() for p in props])
            self.sampled.append(sample(props, targs, stage))
            return self.sampled[-1]

        def run_spy(feats, props, stage):
            self.predictions.append(run(feats, props, stage))
            return self.predictions[-1]

        heads.label_and_sample_stage, heads._run_stage = sample_spy, run_spy


def train_forward(heads, seed: int = 0):
    torch.manual_seed(seed)
    heads.train()
    with EventStorage():
        _, losses = heads(None, features(), proposals(), targets())
    return losses


def decode(boxes: torch.Tensor, deltas: torch.Tensor, weights) -> torch.Tensor:
    """The Faster R-CNN box parametrisation written out (dw, dh clamped at log(1000/16))."""
    wx, wy, ww, wh = weights
    widths, heights = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    cx, cy = boxes[:, 0] + 0.5 * widths, boxes[:, 1] + 0.5 * heights
    clamp = math.log(1000.0 / 16)
    pcx = cx + deltas[:, 0] / wx * widths
    pcy = cy + deltas[:, 1] / wy * heights
    pw = widths * torch.exp((deltas[:, 2] / ww).clamp(max=clamp))
    ph = heights * torch.exp((deltas[:, 3] / wh).clamp(max=clamp))
    out = torch.stack([pcx - pw / 2, pcy - ph / 2, pcx + pw / 2, pcy + ph / 2], dim=1)
    return torch.stack([out[:, 0].clamp(0, SIZE), out[:, 1].clamp(0, SIZE),
                        out[:, 2].clamp(0, SIZE), out[:, 3].clamp(0, SIZE)], dim=1)


def test_every_stage_resamples_512_at_a_quarter_positives_with_the_ground_truth():
    heads = build_heads()
    spy = Spy(heads)
    train_forward(heads)
    assert len(spy.sampled) == 3
    for stage, (inputs, sampled) in enumerate(zip(spy.stage_inputs, spy.sampled, strict=True)):
        for image, (boxes, chosen) in enumerate(zip(inputs, sampled, strict=True)):
            candidates = torch.cat([boxes, GT_BOXES])  # the ground truth is appended
            iou = box_iou(candidates, GT_BOXES).max(dim=1).values
            positives = int((iou >= IOU_THRESHOLDS[stage]).sum())
            negatives = len(candidates) - positives
            fg = int((chosen.gt_classes < NUM_CLASSES).sum())
            assert fg == min(positives, 128), (stage, image)
            assert len(chosen) == fg + min(negatives, 512 - fg) <= 512, (stage, image)
            # every sampled box is one of the candidates; its label follows its IoU
            match = box_iou(chosen.proposal_boxes.tensor, candidates)
            assert torch.allclose(match.max(dim=1).values, torch.ones(len(chosen)))
            chosen_iou = box_iou(chosen.proposal_boxes.tensor, GT_BOXES).max(dim=1).values
            assert torch.equal(chosen.gt_classes < NUM_CLASSES,
                               chosen_iou >= IOU_THRESHOLDS[stage])
            if image == 1:  # fewer than 128 positives: all of them, the ground truth included
                assert int(chosen.proposal_is_gt.sum()) == len(GT_BOXES)
                gt_rows = chosen.proposal_boxes.tensor[chosen.proposal_is_gt]
                same = (gt_rows[:, None] == GT_BOXES[None]).all(dim=2)  # (sampled, gt)
                assert same.sum(dim=0).tolist() == [1, 1, 1]
                assert torch.equal(chosen.gt_classes[chosen.proposal_is_gt],
                                   GT_CLASSES[same.int().argmax(dim=1)])
        if stage > 0:  # inputs: the previous stage's sampled boxes without the ground truth
            previous = spy.sampled[stage - 1]
            assert [len(b) for b in inputs] == [
                int((~p.proposal_is_gt).sum()) for p in previous]
    assert len(spy.sampled[0][0]) == 512 and int(
        (spy.sampled[0][0].gt_classes < NUM_CLASSES).sum()) == 128


def test_class_specific_deltas_refine_by_the_ground_truth_or_predicted_class():
    heads = build_heads()
    spy = Spy(heads)
    train_forward(heads)
    weights = [p.box2box_transform.weights for p in heads.box_predictor]
    for stage in range(2):
        scores, deltas = spy.predictions[stage]
        assert deltas.shape[1] == 4 * NUM_CLASSES  # class-specific regression
        assert heads.box_predictor[stage].bbox_pred.out_features == 4 * NUM_CLASSES
        start = 0
        moved_by_other_class = 0
        for image, chosen in enumerate(spy.sampled[stage]):
            rows = slice(start, start + len(chosen))
            start += len(chosen)
            labels = chosen.gt_classes.clone()
            background = labels == NUM_CLASSES
            labels[background] = scores[rows, :NUM_CLASSES].argmax(dim=1)[background]
            own = deltas[rows].view(-1, NUM_CLASSES, 4)[torch.arange(len(chosen)), labels]
            expected = decode(chosen.proposal_boxes.tensor, own, weights[stage])
            expected = expected[~chosen.proposal_is_gt]
            got = spy.stage_inputs[stage + 1][image]
            assert torch.allclose(got, expected, atol=1e-4), (stage, image)
            class0 = decode(chosen.proposal_boxes.tensor, deltas[rows, :4], weights[stage])
            moved_by_other_class += int(
                (class0[~chosen.proposal_is_gt] - got).abs().max(dim=1).values.gt(1e-3).sum())
        assert moved_by_other_class > 0  # the class matters: not class 0's (or shared) deltas


def test_stage_losses_box_and_mask_weighted_1_half_quarter():
    weighted = build_heads()
    spy = Spy(weighted)
    losses = train_forward(weighted)
    unweighted = build_heads(stage_loss_weights=[1.0, 1.0, 1.0])
    unweighted.load_state_dict(weighted.state_dict())
    plain = train_forward(unweighted)
    names = {f"{name}_stage{k}" for name in ("loss_cls", "loss_box_reg", "loss_mask")
             for k in range(3)}
    assert set(losses) == set(plain) == names
    for k, weight in enumerate((1.0, 0.5, 0.25)):
        for name in ("loss_cls", "loss_box_reg", "loss_mask"):
            key = f"{name}_stage{k}"
            assert losses[key].item() == pytest.approx(weight * plain[key].item(), rel=1e-5)

    feats = features()
    for k, weight in enumerate((1.0, 0.5, 0.25)):
        # stage k's mask head on stage k's positives: BCE with the class channel, recomputed
        fgs = [chosen[chosen.gt_classes < NUM_CLASSES] for chosen in spy.sampled[k]]
        pooled = weighted.mask_pooler([feats[f] for f in ("p2", "p3", "p4", "p5")],
                                      [fg.proposal_boxes for fg in fgs])
        classes = torch.cat([fg.gt_classes for fg in fgs])
        logits = weighted.mask_head[k].layers(pooled)[torch.arange(len(classes)), classes]
        gt = torch.cat([fg.gt_masks.crop_and_resize(fg.proposal_boxes.tensor, 28)
                        for fg in fgs]).float()
        expected = F.binary_cross_entropy_with_logits(logits, gt)
        assert losses[f"loss_mask_stage{k}"].item() == pytest.approx(
            weight * expected.item(), rel=1e-5)
    # each stage's mask loss reaches its own mask head only
    losses["loss_mask_stage1"].backward()
    grads = [any(p.grad is not None and p.grad.abs().sum() > 0 for p in head.parameters())
             for head in weighted.mask_head]
    assert grads == [False, True, False]


def test_inference_averages_stage_logits_and_mask_probabilities():
    heads = build_heads()
    heads.box_predictor[-1].test_score_thresh = 0.0
    heads.box_predictor[-1].test_nms_thresh = 1.01  # keep every (proposal, class) pair
    heads.box_predictor[-1].test_topk_per_image = 10_000
    heads.eval()
    feats = features(1)
    props = proposals(num_near=(30,), num_random=(20,))
    with torch.no_grad():
        detections, _ = heads(None, feats, props)
        det = detections[0]

        # the box cascade by hand: every stage refines every box by its argmax class
        level_feats = [feats[f] for f in ("p2", "p3", "p4", "p5")]
        boxes = props[0].proposal_boxes.tensor
        logits = []
        for k in range(3):
            pooled = heads.box_pooler(level_feats, [Boxes(boxes)])
            scores, deltas = heads.box_predictor[k](heads.box_head[k](pooled))
            logits.append(scores)
            weights = heads.box_predictor[k].box2box_transform.weights
            if k < 2:
                label = scores[:, :NUM_CLASSES].argmax(dim=1)
                own = deltas.view(-1, NUM_CLASSES, 4)[torch.arange(len(boxes)), label]
                boxes = decode(boxes, own, weights)
        probs = F.softmax((logits[0] + logits[1] + logits[2]) / 3, dim=1)[:, :NUM_CLASSES]
        final = torch.stack([decode(boxes, deltas.view(-1, NUM_CLASSES, 4)[:, c], weights)
                             for c in range(NUM_CLASSES)], dim=1)
        order = probs.flatten().argsort(descending=True)
        assert len(det) == len(order)
        assert torch.allclose(det.scores, probs.flatten()[order], atol=1e-6)
        assert torch.equal(det.pred_classes, order % NUM_CLASSES)
        assert torch.allclose(det.pred_boxes.tensor, final.view(-1, 4)[order], atol=1e-4)

        # masks: the mean of the three heads' sigmoid of the detected class's channel
        pooled = heads.mask_pooler(level_feats, [det.pred_boxes])
        stage_probs = [head.layers(pooled)[torch.arange(len(det)), det.pred_classes].sigmoid()
                       for head in heads.mask_head]
        mean = (stage_probs[0] + stage_probs[1] + stage_probs[2]) / 3
        assert det.pred_masks.shape == (len(det), 1, 28, 28)
        assert torch.allclose(det.pred_masks[:, 0], mean, atol=1e-6)
        assert not torch.allclose(det.pred_masks[:, 0], stage_probs[-1], atol=1e-3)


def test_coco_config_selects_the_mmdet_cascade_and_detectron2s_remains_an_option():
    for path, kind, reg_outputs in [(COCO, StagewiseMaskCascadeROIHeads, 80 * 4),
                                    (COCO.replace("_3x.py", "_3x_d2cascade.py"),
                                     CascadeROIHeads, 4)]:
        cfg = load_config(path)
        with torch.device("meta"):
            model = instantiate(cfg.model)
        heads = model.roi_heads
        assert type(heads) is kind
        assert heads.batch_size_per_image == 512 and heads.positive_fraction == 0.25
        assert heads.proposal_append_gt
        assert [m.thresholds[1] for m in heads.proposal_matchers] == [0.5, 0.6, 0.7]
        assert [p.bbox_pred.out_features for p in heads.box_predictor] == [reg_outputs] * 3
        assert [p.box2box_transform.weights for p in heads.box_predictor] == [
            pytest.approx(w) for w in [(10, 10, 5, 5), (20, 20, 10, 10),
                                       (1 / 0.033, 1 / 0.033, 1 / 0.067, 1 / 0.067)]]
        if kind is StagewiseMaskCascadeROIHeads:
            assert heads.stage_loss_weights == (1.0, 0.5, 0.25)
            assert len(heads.mask_head) == 3
            assert len({id(p) for h in heads.mask_head for p in h.parameters()}) == 3 * len(
                list(heads.mask_head[0].parameters()))  # three separate heads
            assert all(h.predictor.out_channels == 80 for h in heads.mask_head)


def test_rpn_options_of_the_recipe():
    rpn = instantiate(load_config(COCO).model.proposal_generator)
    assert rpn.post_nms_topk == {True: 2000, False: 1000}
    assert rpn.pre_nms_topk == {True: 2000, False: 1000}
    assert rpn.box_reg_loss_type == "smooth_l1" and rpn.smooth_l1_beta == pytest.approx(1 / 9)
    assert rpn.anchor_boundary_thresh == 0

    # anchors crossing the image border are ignored (label -1), whatever their IoU
    gt = Instances((100, 100), gt_boxes=Boxes(torch.tensor([[0.0, 0, 20, 20]])))
    anchors = Boxes(torch.tensor([[-2.0, 0, 18, 20],     # IoU 0.82, crosses the left border
                                  [0, 0, 20, 20],        # IoU 1
                                  [40, 40, 60, 60],      # IoU 0, inside
                                  [90, 90, 110, 110]]))  # IoU 0, crosses the bottom right
    with EventStorage():
        labels, _ = rpn.label_and_sample_anchors([anchors], [gt])
        assert labels[0].tolist() == [-1, 1, 0, -1]
        rpn.anchor_boundary_thresh = -1  # detectron2's default: no border rule
        assert rpn.label_and_sample_anchors([anchors], [gt])[0][0].tolist() == [1, 1, 0, 0]

        # SmoothL1 with beta 1/9 on one positive anchor whose target deltas are 0
        deltas = torch.tensor([[[0.05, 0.5, 0.0, 0.0]]])
        losses = rpn.losses([Boxes(torch.tensor([[0.0, 0, 20, 20]]))],
                            [torch.zeros(1, 1)], [torch.tensor([1])], [deltas],
                            [torch.tensor([[0.0, 0, 20, 20]])])
    beta = 1 / 9
    expected = 0.5 * 0.05 ** 2 / beta + (0.5 - 0.5 * beta)
    assert losses["loss_rpn_loc"].item() == pytest.approx(expected / 256)


def test_heads_initialised_as_mmdet_and_quickstart_exports_only_config_nodes():
    heads = build_heads()
    fc = heads.box_head[0].fc1.weight  # 16*7*7 -> 256
    fan_in, fan_out = fc.shape[1], fc.shape[0]
    xavier_bound = math.sqrt(6 / (fan_in + fan_out))  # mmdet: xavier-uniform
    assert math.sqrt(3 / fan_in) * 1.1 < fc.abs().max() <= xavier_bound  # not c2_xavier_fill
    assert all(float(h.predictor.weight.detach().std()) == pytest.approx(math.sqrt(2 / NUM_CLASSES),
                                                                rel=0.25)
               for h in heads.mask_head)  # kaiming-normal fan-out (detectron2: std 0.001)
    assert all(float(h.predictor.bias.detach().abs().max()) == 0 for h in heads.mask_head)
    assert sorted(load_config(QUICKSTART)) == [
        "dataloader", "lr_multiplier", "model", "optimizer", "train", "tuning"]


def test_training_with_an_image_without_ground_truth():
    heads = build_heads()
    heads.train()
    empty = Instances((SIZE, SIZE), gt_boxes=Boxes(torch.zeros(0, 4)),
                      gt_classes=torch.zeros(0, dtype=torch.long),
                      gt_masks=BitMasks(torch.zeros(0, SIZE, SIZE, dtype=torch.bool)))
    spy = Spy(heads)
    with EventStorage():
        _, losses = heads(None, features(), proposals(), [targets(1)[0], empty])
    assert all(torch.isfinite(v) for v in losses.values())
    for sampled in spy.sampled:  # the empty image: background only, up to 512 per stage
        assert len(sampled[1]) <= 512 and bool((sampled[1].gt_classes == NUM_CLASSES).all())
