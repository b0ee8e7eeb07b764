"""Top-k accuracy (single label) and mAP (multi-label) as a detectron2 DatasetEvaluator."""
from __future__ import annotations

import itertools

from mona_scale import collectives

import numpy as np
import torch
from detectron2.evaluation import DatasetEvaluator
from detectron2.utils import comm

__all__ = ["ClassificationEvaluator", "topk_accuracy", "mean_average_precision"]


def topk_accuracy(logits: torch.Tensor, labels: torch.Tensor, k: int) -> float:
    """Percentage of rows whose label is among the k highest logits."""
    k = min(k, logits.shape[1])
    top = logits.topk(k, dim=1).indices
    return 100.0 * (top == labels[:, None]).any(dim=1).float().mean().item()


def mean_average_precision(scores: np.ndarray, targets: np.ndarray) -> float:
    """Mean over classes of average precision (area under the precision-recall steps),
    in percent; classes without positives are skipped."""
    aps = []
    for c in range(scores.shape[1]):
        positives = targets[:, c] > 0
        if not positives.any():
            continue
        order = np.argsort(-scores[:, c], kind="stable")
        hits = positives[order]
        precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
        aps.append(precision[hits].mean())
    return 100.0 * float(np.mean(aps)) if aps else float("nan")


class ClassificationEvaluator(DatasetEvaluator):
    """Collects logits and labels over the (distributed) test set.

    Args:
        dataset_name: unused except for logging symmetry with detectron2 evaluators.
        topk: which top-k accuracies to report (single label).
        multi_label: report mAP over multi-hot labels instead.
    """

    def __init__(self, dataset_name: str | None = None, topk=(1, 5), multi_label: bool = False):
        self.dataset_name, self.topk, self.multi_label = dataset_name, tuple(topk), multi_label
        self.reset()

    def reset(self) -> None:
        self._logits, self._labels = [], []

    def process(self, inputs, outputs) -> None:
        for x, y in zip(inputs, outputs, strict=True):
            self._logits.append(y["logits"].detach().float().cpu())
            self._labels.append(torch.as_tensor(x["label"]))

    def evaluate(self) -> dict:
        logits = list(itertools.chain(*collectives.gather_objects(self._logits)))
        labels = list(itertools.chain(*collectives.gather_objects(self._labels)))
        if not comm.is_main_process():
            return {}
        if not logits:
            raise RuntimeError(f"ClassificationEvaluator({self.dataset_name}): no predictions")
        logits, labels = torch.stack(logits), torch.stack(labels)
        if self.multi_label:
            result = {"mAP": mean_average_precision(logits.sigmoid().numpy(), labels.numpy())}
        else:
            result = {f"top{k}": topk_accuracy(logits, labels.long(), k) for k in self.topk}
        return {"classification": result}
