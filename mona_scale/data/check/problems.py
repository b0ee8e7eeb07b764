"""What the data check reports: a :class:`Problem` found in the data, and a resolved
split (:class:`SplitData`) that the checks read."""
from __future__ import annotations

from dataclasses import dataclass, field

SPLITS = ("train", "test")
DEFAULT_IGNORE_LABEL = 255


@dataclass(frozen=True)
class Problem:
    """One problem found in the data.

    Attributes:
        split: ``train``, ``test`` or ``train/test`` (a mismatch between the two).
        kind: what is wrong, e.g. ``missing file``, ``undecodable image``.
        path: the file it concerns (image, mask, annotation or split file, config).
        detail: a human-readable explanation.
    """

    split: str
    kind: str
    path: str
    detail: str = ""


@dataclass
class SplitData:
    """A resolved split: its records and what is known about its classes.

    Attributes:
        split: ``train`` or ``test``.
        records: the dataset dicts the loader will use (empty records dropped when the
            loader filters them).
        task: ``detection``, ``sem_seg`` or ``classification``.
        names: the registered detectron2 dataset names the node reads.
        classes: class names (from the datasets' metadata, else ``"0"``, ``"1"``, ...).
        classes_from_metadata: whether ``classes`` came from metadata.
        ignore_label: the semantic-segmentation ignore value.
        source: the file the split comes from (annotation file, split file, directory).
        skipped_empty: records without (non-crowd) annotations dropped by the loader.
        empty: records without annotations that the loader keeps (e.g. test images).
        id_map: COCO category id -> contiguous id, when the metadata has one.
    """

    split: str
    records: list[dict]
    task: str
    names: list[str] = field(default_factory=list)
    classes: list[str] = field(default_factory=list)
    classes_from_metadata: bool = False
    ignore_label: int = DEFAULT_IGNORE_LABEL
    source: str = ""
    skipped_empty: int = 0
    empty: int = 0
    id_map: dict | None = None
