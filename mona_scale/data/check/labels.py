"""Label checks without opening a file: labels and category ids of every record, class
lists of the train and test sets compared, images and annotations counted per
class."""
from __future__ import annotations

from collections import Counter

from mona_scale.data.shards.sample import InvalidSample, validate_record

import numpy as np

from .resolve import Problem, SplitData


def _label_problem(record: dict, num_classes: int) -> tuple[str, str] | None:
    """The (kind, detail) of a classification label's problem, None when it is valid."""
    label = record.get("label")
    if label is None or (isinstance(label, (list, tuple)) and len(label) == 0):
        return "empty label", "the record has no label"
    if isinstance(label, (list, tuple, np.ndarray)):
        values = np.asarray(label, dtype=float)
        if num_classes and len(values) != num_classes:
            return "label out of range", (f"multi-hot label of length {len(values)}, expected "
                                          f"{num_classes}")
        if not np.isin(values, (0.0, 1.0)).all():
            return "label out of range", f"multi-hot label holds values other than 0/1: {label}"
        if values.sum() == 0:
            return "empty label", "multi-hot label with no positive class"
        return None
    if isinstance(label, bool) or not isinstance(label, (int, np.integer)):
        return "label out of range", f"label {label!r} is not an integer"
    if label < 0 or (num_classes and label >= num_classes):
        return "label out of range", f"label {label} outside [0, {num_classes or 'inf'})"
    return None


def _detection_problem(record: dict, num_classes: int) -> tuple[str, str] | None:
    """The (kind, detail) of a detection record's first problem, None when it is valid."""
    for k, ann in enumerate(record.get("annotations", [])):
        category = ann.get("category_id") if isinstance(ann, dict) else None
        if (not isinstance(category, (int, np.integer)) or category < 0
                or (num_classes and category >= num_classes)):
            return "label out of range", (f"annotation {k}: category_id {category!r} outside "
                                          f"[0, {num_classes or 'inf'})")
    try:  # what mona-shards rejects: boxes, polygons, RLE
        validate_record(record, num_classes or None)
    except InvalidSample as e:
        return "invalid annotation", str(e)
    return None


def check_labels(data: SplitData) -> list[Problem]:
    """Label problems of every record of a split (no file is opened).

    Args:
        data: a resolved split; ``len(data.classes)`` is the number of classes.

    Returns:
        Problems: ``label out of range`` (category id / label / multi-hot length),
        ``empty label`` (classification), ``invalid annotation`` (boxes, polygons, RLE).
    """
    if data.task not in ("classification", "detection"):
        return []
    check = _label_problem if data.task == "classification" else _detection_problem
    found = ((r.get("file_name", ""), check(r, len(data.classes))) for r in data.records)
    return [Problem(data.split, p[0], path, p[1]) for path, p in found if p]


def compare_splits(train: SplitData, test: SplitData) -> list[Problem]:
    """Class lists (and COCO category ids) that differ between the train and test sets.

    Args:
        train: the resolved train split.
        test: the resolved test split.

    Returns:
        ``category mismatch`` problems (path: the test set's source).
    """
    def problem(detail: str) -> Problem:
        return Problem("train/test", "category mismatch", test.source or ", ".join(test.names),
                       detail)

    if train.task != test.task:
        return [problem(f"train is {train.task}, test is {test.task}")]
    problems = []
    if train.classes_from_metadata and test.classes_from_metadata and (
            train.classes != test.classes):
        pairs = enumerate(zip(train.classes, test.classes, strict=False))
        k = next((k for k, (a, b) in pairs if a != b), None)
        problems.append(problem(
            f"the train set has {len(train.classes)} classes, the test set {len(test.classes)}"
            if k is None else f"class {k} is {train.classes[k]!r} in the train set but "
                              f"{test.classes[k]!r} in the test set"))
    if train.id_map and test.id_map and dict(train.id_map) != dict(test.id_map):
        problems.append(problem(f"category id -> class index maps differ: train "
                                f"{dict(train.id_map)}, test {dict(test.id_map)}"))
    return problems


def class_counts(data: SplitData, mask_stats: np.ndarray | None = None
                 ) -> tuple[Counter, Counter]:
    """Per class index: images containing it, and annotations of it.

    Detection counts every annotation the reader keeps (crowd ones included) and the
    images holding at least one; classification counts labels (a multi-hot label counts
    once per positive class); semantic segmentation counts the masks containing a class and
    its pixels (from :func:`check_files`' ``mask_stats``; nothing without them).

    Args:
        data: a resolved split.
        mask_stats: :func:`check_files`' per-value pixel and mask counts (semantic
            segmentation).

    Returns:
        ``(images, annotations)`` counters keyed by class index (annotations: pixels for
        semantic segmentation).
    """
    images, annotations = Counter(), Counter()
    if data.task == "sem_seg":
        for k in np.flatnonzero(mask_stats[0]) if mask_stats is not None else []:
            if k != data.ignore_label:
                annotations[int(k)], images[int(k)] = int(mask_stats[0, k]), int(mask_stats[1, k])
        return images, annotations
    for record in data.records:
        label = record.get("label")
        if data.task == "detection":
            ids = [a.get("category_id") for a in record.get("annotations", [])]
        elif isinstance(label, (list, tuple, np.ndarray)):  # multi-hot
            ids = np.flatnonzero(np.asarray(label, dtype=float) > 0).tolist()
        else:
            ids = [label]
        ids = [int(i) for i in ids if isinstance(i, (int, np.integer))]
        annotations.update(ids)
        images.update(set(ids))
    return images, annotations
