"""Cascade Mask R-CNN RoI heads as mmdetection 2.11's ``CascadeRoIHead`` trains and tests them.

detectron2's :class:`~detectron2.modeling.roi_heads.CascadeROIHeads` differs from mmdet's
cascade in five ways that matter for reproducing an mmdet-trained recipe; this subclass
keeps detectron2's building blocks (poolers, ``FastRCNNConvFCHead``,
``FastRCNNOutputLayers``, ``MaskRCNNConvUpsampleHead``, ``Matcher``) and changes only the
cascade logic:

* **Resampling at every stage.** Each stage matches its input boxes to the ground truth
  with its own IoU threshold, appends the ground-truth boxes as proposals and samples
  ``batch_size_per_image`` of them with at most ``positive_fraction`` positives. The next
  stage's inputs are this stage's *sampled* boxes, refined, without the appended
  ground-truth boxes (detectron2 samples once, before stage 0, and only relabels later).
* **Class-specific refinement.** With class-specific regression (``4 * num_classes``
  deltas) the box a RoI moves to is the one of its class: the ground-truth class for a
  positive training RoI, otherwise the highest-scoring foreground class (detectron2's
  cascade supports class-agnostic regression only). Refined boxes are clipped to the image;
  empty ones are kept, as mmdet does.
* **One mask head per stage.** Stage ``k``'s mask head is trained on stage ``k``'s positive
  RoIs; at test time the three heads run on the final detections and their sigmoid
  probabilities (of the detected class) are averaged.
* **Stage loss weights** (1, 0.5, 0.25 by default) multiply every loss of their stage (box
  classification, box regression, mask); no gradient rescaling of the pooled features
  (detectron2 scales their gradient by ``1 / num_stages`` instead).
* **Test scores** are the softmax of the stages' *averaged logits* (detectron2 averages the
  stages' probabilities).

Built from LazyConfig only (``configs/common/models/cascade_mask_rcnn_swin.py``); the
keyword arguments are those of ``CascadeROIHeads`` with ``mask_heads`` (one per stage) in
place of ``mask_head``. The per-stage modules are ``box_head[k]``, ``box_predictor[k]`` and
``mask_head[k]``.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from detectron2.config import configurable
from detectron2.layers import cat
from detectron2.modeling.box_regression import Box2BoxTransform
from detectron2.modeling.matcher import Matcher
from detectron2.modeling.poolers import ROIPooler
from detectron2.modeling.roi_heads import CascadeROIHeads
from detectron2.modeling.roi_heads.fast_rcnn import fast_rcnn_inference
from detectron2.modeling.roi_heads.roi_heads import select_foreground_proposals
from detectron2.structures import Boxes, Instances, pairwise_iou
from detectron2.utils.events import get_event_storage
from torch import nn

__all__ = ["StagewiseMaskCascadeROIHeads", "deltas_of_classes"]


def deltas_of_classes(deltas: torch.Tensor, classes: torch.Tensor, box_dim: int = 4
                      ) -> torch.Tensor:
    """The regression deltas of one class per row.

    Args:
        deltas: ``(R, K * box_dim)`` class-specific or ``(R, box_dim)`` class-agnostic deltas.
        classes: ``(R,)`` class index per row, in ``[0, K)``.
        box_dim: coordinates per box.

    Returns:
        ``(R, box_dim)``: row ``i`` holds class ``classes[i]``'s deltas (class-agnostic
        deltas are returned unchanged).
    """
    if deltas.shape[1] == box_dim:
        return deltas
    rows = torch.arange(deltas.shape[0], device=deltas.device)
    return deltas.view(deltas.shape[0], -1, box_dim)[rows, classes]


class StagewiseMaskCascadeROIHeads(CascadeROIHeads):
    """Cascade RoI heads with per-stage resampling, class-specific refinement, one mask head
    per stage (averaged at test) and weighted stage losses (mmdet 2.11 ``CascadeRoIHead``).

    Args:
        box_in_features: feature names the box pooler reads (e.g. ``["p2", ..., "p5"]``).
        box_pooler: RoI pooler of the box heads.
        box_heads: one box head per stage.
        box_predictors: one ``FastRCNNOutputLayers`` per stage, each with its own
            ``Box2BoxTransform``.
        proposal_matchers: one ``Matcher`` per stage (IoU 0.5 / 0.6 / 0.7).
        mask_heads: one mask head per stage (``BaseMaskRCNNHead`` subclasses), or ``None``
            for a box-only cascade. Needs ``mask_in_features`` and ``mask_pooler``.
        stage_loss_weights: multiplier of every loss of each stage.
        init_like_mmdet: re-initialise the layers whose mmdet initialisation differs
            (:meth:`init_like_mmdet`).
        **kwargs: the remaining ``StandardROIHeads``/``ROIHeads`` arguments
            (``num_classes``, ``batch_size_per_image``, ``positive_fraction``,
            ``proposal_append_gt``, ``mask_in_features``, ``mask_pooler``).
    """

    @configurable
    def __init__(self, *, box_in_features: list[str], box_pooler: ROIPooler,
                 box_heads: list[nn.Module], box_predictors: list[nn.Module],
                 proposal_matchers: list[Matcher],
                 mask_heads: Sequence[nn.Module] | None = None,
                 stage_loss_weights: Sequence[float] = (1.0, 0.5, 0.25),
                 init_like_mmdet: bool = True, **kwargs):
        if "mask_head" in kwargs:
            raise ValueError("StagewiseMaskCascadeROIHeads takes 'mask_heads=' (one per stage) "
                             "instead of 'mask_head='")
        num_stages = len(box_heads)
        if len(stage_loss_weights) != num_stages:
            raise ValueError(f"stage_loss_weights has {len(stage_loss_weights)} entries for "
                             f"{num_stages} cascade stages")
        if mask_heads is not None:
            if len(mask_heads) != num_stages:
                raise ValueError(f"mask_heads has {len(mask_heads)} entries for {num_stages} "
                                 "cascade stages")
            if kwargs.get("mask_pooler") is None or kwargs.get("mask_in_features") is None:
                raise ValueError("mask_heads need mask_in_features and a mask_pooler")
            kwargs["mask_head"] = nn.ModuleList(mask_heads)
        else:
            kwargs.pop("mask_in_features", None)
            kwargs.pop("mask_pooler", None)
        super().__init__(box_in_features=box_in_features, box_pooler=box_pooler,
                         box_heads=box_heads, box_predictors=box_predictors,
                         proposal_matchers=proposal_matchers, **kwargs)
        self.stage_loss_weights = tuple(float(w) for w in stage_loss_weights)
        if init_like_mmdet:
            self.init_like_mmdet()

    def init_like_mmdet(self) -> None:
        """Re-initialise the layers whose mmdet 2.11 initialisation differs from detectron2's:
        the box heads' fully connected layers (xavier-uniform, bias 0; detectron2:
        ``c2_xavier_fill``) and the mask heads' logit convolutions (kaiming-normal, fan-out,
        bias 0; detectron2: normal with std 0.001). Convolutions, deconvolutions and the box
        predictors are initialised alike in both."""
        for head in self.box_head:
            for module in head.modules():
                if isinstance(module, nn.Linear):
                    nn.init.xavier_uniform_(module.weight)
                    nn.init.zeros_(module.bias)
        for head in self.mask_head if self.mask_on else []:
            predictor = getattr(head, "predictor", None)
            if isinstance(predictor, nn.Conv2d):
                nn.init.kaiming_normal_(predictor.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(predictor.bias)

    @classmethod
    def from_config(cls, cfg, input_shape):
        raise NotImplementedError(
            "StagewiseMaskCascadeROIHeads is built from a LazyConfig "
            "(see configs/common/models/cascade_mask_rcnn_swin.py), not from a yacs CfgNode")

    # ----------------------------------------------------------------------------- forward
    def forward(self, images, features: dict[str, torch.Tensor], proposals: list[Instances],
                targets: list[Instances] | None = None):
        """Training: ``(last stage's sampled proposals, losses)``; inference:
        ``(detections with pred_masks, {})``. Arguments as :meth:`ROIHeads.forward`."""
        del images
        if self.training:
            if targets is None:
                raise ValueError("StagewiseMaskCascadeROIHeads needs targets in training")
            return self._forward_train(features, proposals, targets)
        detections = self._forward_box(features, proposals)
        return self.forward_with_given_boxes(features, detections), {}

    def _forward_train(self, features, proposals, targets):
        box_features = [features[f] for f in self.box_in_features]
        storage = get_event_storage()
        stage_proposals = [Instances(p.image_size, proposal_boxes=p.proposal_boxes)
                           for p in proposals]
        losses = {}
        for stage in range(self.num_cascade_stages):
            stage_proposals = self.label_and_sample_stage(stage_proposals, targets, stage)
            predictions = self._run_stage(box_features, stage_proposals, stage)
            with storage.name_scope(f"stage{stage}"):
                stage_losses = self.box_predictor[stage].losses(predictions, stage_proposals)
                if self.mask_on:
                    stage_losses.update(self._stage_mask_loss(features, stage_proposals, stage))
            weight = self.stage_loss_weights[stage]
            losses.update({f"{name}_stage{stage}": value * weight
                           for name, value in stage_losses.items()})
            if stage < self.num_cascade_stages - 1:
                stage_proposals = self._refine_sampled(predictions, stage_proposals, stage)
        return stage_proposals, losses

    def _run_stage(self, features, proposals, stage):
        """Pool, box head, predictor of one stage (no gradient rescaling, as in mmdet)."""
        box_features = self.box_pooler(features, [x.proposal_boxes for x in proposals])
        return self.box_predictor[stage](self.box_head[stage](box_features))

    # ------------------------------------------------------------------------ sampling
    @torch.no_grad()
    def label_and_sample_stage(self, proposals: list[Instances], targets: list[Instances],
                               stage: int) -> list[Instances]:
        """Match proposals to the ground truth with ``proposal_matchers[stage]``, append the
        ground-truth boxes as proposals (``proposal_append_gt``) and sample
        ``batch_size_per_image`` of them with at most ``positive_fraction`` positives.

        Args:
            proposals: per image, ``Instances`` with ``proposal_boxes``.
            targets: per image, ``Instances`` with ``gt_boxes``, ``gt_classes`` (and other
                ``gt_*`` fields, e.g. ``gt_masks``).
            stage: cascade stage index.

        Returns:
            Per image, the sampled ``Instances`` with ``proposal_boxes``, ``gt_classes``
            (``num_classes`` for background), ``proposal_is_gt`` (bool, the appended
            ground-truth boxes) and the matched ``gt_*`` fields of the targets.
        """
        sampled, num_fg, num_bg = [], [], []
        for proposals_i, targets_i in zip(proposals, targets, strict=True):
            boxes = proposals_i.proposal_boxes
            is_gt = torch.zeros(len(boxes), dtype=torch.bool, device=boxes.tensor.device)
            if self.proposal_append_gt and len(targets_i) > 0:
                gt_boxes = targets_i.gt_boxes.to(boxes.tensor.device)
                boxes = Boxes.cat([boxes, gt_boxes])
                is_gt = torch.cat([is_gt, torch.ones(len(gt_boxes), dtype=torch.bool,
                                                     device=is_gt.device)])
            match_quality = pairwise_iou(targets_i.gt_boxes, boxes)
            matched_idxs, matched_labels = self.proposal_matchers[stage](match_quality)
            sampled_idxs, gt_classes = self._sample_proposals(matched_idxs, matched_labels,
                                                              targets_i.gt_classes)
            out = Instances(proposals_i.image_size, proposal_boxes=boxes[sampled_idxs],
                            gt_classes=gt_classes, proposal_is_gt=is_gt[sampled_idxs])
            if len(targets_i) > 0:
                sampled_targets = matched_idxs[sampled_idxs]
                for name, value in targets_i.get_fields().items():
                    if name.startswith("gt_") and not out.has(name):
                        out.set(name, value[sampled_targets])
            else:
                out.gt_boxes = Boxes(boxes.tensor.new_zeros((len(out), 4)))
            num_bg.append((gt_classes == self.num_classes).sum().item())
            num_fg.append(gt_classes.numel() - num_bg[-1])
            sampled.append(out)
        storage = get_event_storage()
        storage.put_scalar(f"stage{stage}/roi_head/num_fg_samples", np.mean(num_fg))
        storage.put_scalar(f"stage{stage}/roi_head/num_bg_samples", np.mean(num_bg))
        return sampled

    # ---------------------------------------------------------------------- refinement
    def refine_boxes(self, proposals: list[Instances], deltas: torch.Tensor,
                     classes: torch.Tensor, stage: int) -> list[Boxes]:
        """Apply each box's class deltas of ``stage`` and clip to its image.

        Args:
            proposals: per image, ``Instances`` with ``proposal_boxes`` (``R`` in all).
            deltas: ``(R, 4 * num_classes)`` (or ``(R, 4)``) predicted deltas.
            classes: ``(R,)`` the class whose deltas each box takes.
            stage: cascade stage index (selects the ``Box2BoxTransform``).

        Returns:
            Per image, the refined ``Boxes`` (empty boxes included).
        """
        transform: Box2BoxTransform = self.box_predictor[stage].box2box_transform
        old = cat([p.proposal_boxes.tensor for p in proposals], dim=0)
        new = transform.apply_deltas(deltas_of_classes(deltas.detach(), classes), old)
        refined = []
        for boxes, p in zip(new.split([len(p) for p in proposals]), proposals, strict=True):
            boxes = Boxes(boxes)
            boxes.clip(p.image_size)
            refined.append(boxes)
        return refined

    @torch.no_grad()
    def _refine_sampled(self, predictions, proposals, stage):
        """The next stage's training proposals: this stage's sampled boxes moved by the
        deltas of their ground-truth class (positives) or of their highest-scoring
        foreground class (negatives), without the appended ground-truth boxes."""
        scores, deltas = predictions
        gt_classes = cat([p.gt_classes for p in proposals], dim=0)
        predicted = scores[:, :-1].argmax(dim=1)
        classes = torch.where(gt_classes == self.num_classes, predicted, gt_classes)
        refined = self.refine_boxes(proposals, deltas, classes, stage)
        return [Instances(p.image_size, proposal_boxes=boxes[~p.proposal_is_gt])
                for boxes, p in zip(refined, proposals, strict=True)]

    # ------------------------------------------------------------------------ inference
    def _forward_box(self, features, proposals, targets=None):
        """Inference of the box cascade: every stage scores and refines all proposals (by
        the highest-scoring foreground class); detections are the last stage's
        class-specific boxes scored by the softmax of the stages' mean logits."""
        if self.training:
            raise RuntimeError("_forward_box is the inference path; training runs forward()")
        box_features = [features[f] for f in self.box_in_features]
        image_sizes = [p.image_size for p in proposals]
        stage_proposals = [Instances(p.image_size, proposal_boxes=p.proposal_boxes)
                           for p in proposals]
        logits = []
        for stage in range(self.num_cascade_stages):
            predictions = self._run_stage(box_features, stage_proposals, stage)
            logits.append(predictions[0])
            if stage < self.num_cascade_stages - 1:
                classes = predictions[0][:, :-1].argmax(dim=1)
                refined = self.refine_boxes(stage_proposals, predictions[1], classes, stage)
                stage_proposals = [Instances(p.image_size, proposal_boxes=b)
                                   for b, p in zip(refined, stage_proposals, strict=True)]
        num_per_image = [len(p) for p in stage_proposals]
        scores = F.softmax(sum(logits) / len(logits), dim=-1).split(num_per_image)
        predictor = self.box_predictor[-1]
        boxes = predictor.predict_boxes(predictions, stage_proposals)
        detections, _ = fast_rcnn_inference(
            boxes, scores, image_sizes, predictor.test_score_thresh,
            predictor.test_nms_thresh, predictor.test_topk_per_image)
        return detections

    # ----------------------------------------------------------------------------- masks
    def _stage_mask_loss(self, features, proposals, stage):
        """Stage ``stage``'s mask loss on its positive sampled RoIs (unweighted)."""
        foreground, _ = select_foreground_proposals(proposals, self.num_classes)
        mask_features = self.mask_pooler([features[f] for f in self.mask_in_features],
                                         [p.proposal_boxes for p in foreground])
        return self.mask_head[stage](mask_features, foreground)

    def stage_mask_probs(self, features: dict[str, torch.Tensor],
                         instances: list[Instances]) -> list[torch.Tensor]:
        """Each stage's mask probabilities of the detected class.

        Args:
            features: the FPN features (``mask_in_features`` are read).
            instances: per image, detections with ``pred_boxes`` and ``pred_classes``.

        Returns:
            One ``(N, 1, M, M)`` tensor per stage: the sigmoid of that stage's mask logits
            in the ``pred_classes`` channel (``N`` detections in all images).
        """
        mask_features = self.mask_pooler([features[f] for f in self.mask_in_features],
                                         [x.pred_boxes for x in instances])
        classes = cat([x.pred_classes for x in instances], dim=0)
        probs = []
        for head in self.mask_head:
            logits = head.layers(mask_features)
            if logits.shape[1] > 1:
                logits = logits[torch.arange(len(classes), device=logits.device), classes]
                logits = logits[:, None]
            probs.append(logits.sigmoid())
        return probs

    def _forward_mask(self, features, instances):
        """Inference: ``pred_masks`` = the mean of the stages' sigmoid mask probabilities
        (training computes the mask losses per stage in :meth:`forward`)."""
        if not self.mask_on:
            return {} if self.training else instances
        if self.training:
            raise RuntimeError("mask losses are computed per stage in forward()")
        probs = self.stage_mask_probs(features, instances)
        mean = sum(probs) / len(probs)
        for masks, x in zip(mean.split([len(x) for x in instances]), instances, strict=True):
            x.pred_masks = masks
        return instances
