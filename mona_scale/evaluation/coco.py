"""COCO AP with a C++ COCOeval: detectron2's COCOEvaluator on faster-coco-eval.

detectron2's own fast path (``use_fast_impl=True``) needs its C++ op, which a source
install without ``detectron2/layers/csrc`` does not build, and pycocotools' pure-Python
``evaluate()`` takes minutes on COCO val2017 (rank 0 alone, while the other ranks wait).
``faster-coco-eval`` (PyPI wheels) reimplements ``evaluate``/``accumulate`` in C++ with
pycocotools' matching rules, so the AP table is the same (tested on polygons, crowd regions,
several categories, boxes and masks).
"""
from __future__ import annotations

import contextlib
import copy
import io
import itertools
import json
import os

import numpy as np
from detectron2.evaluation import COCOEvaluator
from detectron2.utils.file_io import PathManager

__all__ = ["FastCOCOEvaluator", "coco_backend"]

BACKENDS = ("auto", "faster_coco_eval", "pycocotools")


def coco_backend(backend: str = "auto") -> str:
    """The COCOeval implementation to use.

    Args:
        backend: ``"auto"`` (faster-coco-eval when importable, else pycocotools),
            ``"faster_coco_eval"`` or ``"pycocotools"``.

    Returns:
        ``"faster_coco_eval"`` or ``"pycocotools"``.
    """
    if backend not in BACKENDS:
        raise ValueError(f"COCO evaluation backend={backend!r}: expected one of {BACKENDS}")
    if backend == "pycocotools":
        return backend
    try:
        import faster_coco_eval  # noqa: F401
    except ImportError as error:
        if backend == "faster_coco_eval":
            raise ImportError("COCO evaluation backend='faster_coco_eval' needs the package "
                              "faster-coco-eval: pip install faster-coco-eval") from error
        return "pycocotools"
    return "faster_coco_eval"


class FastCOCOEvaluator(COCOEvaluator):
    """detectron2's :class:`~detectron2.evaluation.COCOEvaluator` (same arguments, results
    and files) whose AP computation runs faster-coco-eval's C++ COCOeval when importable.

    Args:
        dataset_name: a registered dataset (its ``json_file`` metadata or detectron2 dicts).
        tasks: ``("bbox", "segm", "keypoints")`` subset; default: inferred from predictions.
        distributed: gather predictions from every rank and evaluate on rank 0.
        output_dir: where to write ``instances_predictions.pth`` and
            ``coco_instances_results.json``.
        max_dets_per_image: detections per image for AP (COCO's default 100).
        kpt_oks_sigmas: keypoint OKS sigmas (default: COCO's).
        backend: ``"auto"``, ``"faster_coco_eval"`` or ``"pycocotools"`` (detectron2's
            official path).
        **kwargs: further keyword arguments of detectron2's COCOEvaluator.
    """

    def __init__(self, dataset_name: str, tasks=None, distributed: bool = True,
                 output_dir: str | None = None, *, max_dets_per_image: int | None = None,
                 kpt_oks_sigmas=(), backend: str = "auto", **kwargs):
        super().__init__(dataset_name, tasks, distributed, output_dir,
                         max_dets_per_image=max_dets_per_image, use_fast_impl=False,
                         kpt_oks_sigmas=kpt_oks_sigmas, **kwargs)
        self.backend = coco_backend(backend)
        self._fast_gt = None

    def _eval_predictions(self, predictions, img_ids=None):
        """Fill ``self._results`` with the AP table of every task (detectron2's layout)."""
        if self.backend == "pycocotools":
            return super()._eval_predictions(predictions, img_ids=img_ids)
        coco_results = list(itertools.chain(*[x["instances"] for x in predictions]))
        tasks = self._tasks or self._tasks_from_predictions(coco_results)
        self._unmap_category_ids(coco_results)
        if self._output_dir:
            file_path = os.path.join(self._output_dir, "coco_instances_results.json")
            self._logger.info(f"Saving results to {file_path}")
            with PathManager.open(file_path, "w") as f:
                f.write(json.dumps(coco_results))
        if not self._do_evaluation:
            self._logger.info("Annotations are not available for evaluation.")
            return
        self._logger.info("Evaluating predictions with faster-coco-eval's C++ COCOeval ...")
        for task in sorted(tasks):
            if task not in {"bbox", "segm", "keypoints"}:
                raise ValueError(f"unknown COCO evaluation task {task!r}")
            coco_eval = self._evaluate_task(coco_results, task, img_ids) if coco_results else None
            self._results[task] = self._derive_coco_results(
                coco_eval, task, class_names=self._metadata.get("thing_classes"))

    def _unmap_category_ids(self, coco_results: list[dict]) -> None:
        """Contiguous class indices -> the dataset's category ids, in place."""
        mapping = getattr(self._metadata, "thing_dataset_id_to_contiguous_id", None)
        if mapping is None:
            return
        reverse = {v: k for k, v in mapping.items()}
        for result in coco_results:
            if result["category_id"] not in reverse:
                raise ValueError(f"a prediction has class {result['category_id']} but dataset "
                                 f"{self._metadata.name!r} has {len(reverse)} classes")
            result["category_id"] = reverse[result["category_id"]]

    def _evaluate_task(self, coco_results: list[dict], task: str, img_ids=None):
        """Run faster-coco-eval's COCOeval on one task; returns it summarized."""
        from faster_coco_eval import COCO, COCOeval_faster

        if self._fast_gt is None:  # its own copy: the C++ path annotates gts in place
            self._fast_gt = COCO(copy.deepcopy(self._coco_api.dataset))
        results = copy.deepcopy(coco_results)
        if task == "segm":  # mask AP uses the mask area for small/medium/large, as detectron2
            for r in results:
                r.pop("bbox", None)
        silent = contextlib.redirect_stdout(io.StringIO())
        with silent:
            coco_dt = self._fast_gt.loadRes(results)
            sigmas = list(self._kpt_oks_sigmas) if task == "keypoints" and \
                self._kpt_oks_sigmas else None
            coco_eval = COCOeval_faster(self._fast_gt, coco_dt, task, kpt_oks_sigmas=sigmas,
                                        print_function=lambda *a, **k: None)
            if task != "keypoints":
                coco_eval.params.maxDets = list(self._max_dets_per_image)
            if img_ids is not None:
                coco_eval.params.imgIds = list(img_ids)
            coco_eval.evaluate()
            coco_eval.accumulate()
            coco_eval.summarize()
        coco_eval.stats = np.asarray(coco_eval.stats)
        return coco_eval
