"""Classification dataset readers: an ImageFolder tree, split files (the reference's format
and Oxford-IIIT Pets' own ``annotations/{trainval,test}.txt``), Oxford Flowers-102's MATLAB
files, and VOC 2007 image labels. Each returns detectron2-style dicts (``file_name``, ``image_id``,
``label``) for :class:`~mona_scale.data.classification.ClassificationMapper`.

Relative paths are resolved against ``$DETECTRON2_DATASETS`` (default ``./datasets``), so
configs name files the way detectron2's builtin datasets do. A missing or unreadable file
stops the reader with an error that names it (and, for split files, the line).
"""
from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
from PIL import Image

__all__ = ["IMAGE_EXTENSIONS", "FLOWERS102_SPLITS", "datasets_root", "image_folder_dicts",
           "split_file_dicts", "flowers102_dicts", "voc_classification_dicts", "check_image"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp")


def datasets_root() -> str:
    """``$DETECTRON2_DATASETS`` or ``./datasets``, as detectron2's builtin datasets.

    Returns:
        The directory (not checked).
    """
    return os.environ.get("DETECTRON2_DATASETS", "datasets")


def _resolve(path: str) -> str:
    return path if os.path.isabs(path) else os.path.join(datasets_root(), path)


def check_image(path: str, source: str = "") -> None:
    """Raise if ``path`` is missing or not a readable image.

    Args:
        path: the image file.
        source: where the path came from (prefix of the error message).

    Raises:
        FileNotFoundError: the file does not exist.
        OSError: it cannot be opened or decoded as an image.
    """
    where = f"{source}: " if source else ""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{where}image {path!r} does not exist")
    try:
        with Image.open(path) as image:
            image.verify()
    except Exception as e:  # PIL raises many types for broken files
        raise OSError(f"{where}image {path!r} is not a readable image: {e}") from e


def image_folder_dicts(root: str, classes: Sequence[str] | None = None,
                       extensions: Sequence[str] = IMAGE_EXTENSIONS,
                       check_images: bool = True) -> list[dict]:
    """Read an ImageFolder tree ``<root>/<class>/**/<image>``.

    Args:
        root: the tree (relative paths: under :func:`datasets_root`).
        classes: class directory names in label order; default all sub-directories, sorted.
        extensions: image file suffixes (case-insensitive).
        check_images: open every image once to fail early on unreadable files.

    Returns:
        Dicts sorted by (label, path).
    """
    root = _resolve(root)
    if not os.path.isdir(root):
        raise FileNotFoundError(f"ImageFolder root {root!r} does not exist")
    found = sorted(e.name for e in os.scandir(root) if e.is_dir())
    classes = list(classes) if classes is not None else found
    missing = [c for c in classes if c not in found]
    if missing:
        raise FileNotFoundError(f"ImageFolder {root!r}: class directories {missing} do not "
                                f"exist (found {found})")
    suffixes = tuple(e.lower() for e in extensions)
    dicts = []
    for label, name in enumerate(classes):
        for directory, _, files in sorted(os.walk(os.path.join(root, name))):
            for file in sorted(f for f in files if f.lower().endswith(suffixes)):
                path = os.path.join(directory, file)
                if check_images:
                    check_image(path, f"ImageFolder {root!r}")
                dicts.append({"file_name": path, "image_id": len(dicts), "label": label})
    if not dicts:
        raise FileNotFoundError(f"ImageFolder {root!r}: no images with suffixes {suffixes}")
    return dicts


def split_file_dicts(split_file: str, image_root: str | None = None, num_classes: int = 0,
                     multi_label: bool = False, path_format: str = "{}", label_offset: int = 0,
                     ignore_extra_columns: bool = False, check_images: bool = True) -> list[dict]:
    """Read a split file of lines ``<relative path> <label> [<label> ...]``.

    This is the reference's (mmcls ``ann_file``) format. Blank lines and lines starting
    with ``#`` are skipped.

    Args:
        split_file: the list (relative paths: under :func:`datasets_root`).
        image_root: directory the image paths are relative to; default the split file's.
        num_classes: number of classes; labels outside ``[0, num_classes)`` are an error
            (0: not checked; required for ``multi_label``).
        multi_label: every label column is a positive class; ``label`` becomes a multi-hot
            list of ``num_classes`` floats.
        path_format: how the first column becomes a path, e.g. ``"images/{}.jpg"`` for
            Oxford Pets' ``annotations/{trainval,test}.txt``.
        label_offset: added to every label (``-1`` for 1-based files such as Pets').
        ignore_extra_columns: single-label only: ignore columns after the label (Pets'
            species and breed ids); otherwise they are an error.
        check_images: open every image once to fail early on missing or unreadable files.

    Returns:
        One dict per line, in file order.
    """
    split_file = _resolve(split_file)
    image_root = _resolve(image_root) if image_root is not None else os.path.dirname(split_file)
    if multi_label and num_classes <= 0:
        raise ValueError("split_file_dicts(multi_label=True) needs num_classes")
    try:
        with open(split_file) as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise FileNotFoundError(f"split file {split_file!r} cannot be read ({e}); expected "
                                f"lines '<image path relative to {image_root}> <label>'") from e
    dicts = []
    for number, line in enumerate(lines, 1):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        where = f"{split_file}:{number}"
        if len(fields) < 2 or (len(fields) > 2 and not (multi_label or ignore_extra_columns)):
            raise ValueError(f"{where}: expected '<path> <label>', got {line!r}")
        try:
            labels = [int(v) + label_offset for v in fields[1:(None if multi_label else 2)]]
        except ValueError as e:
            raise ValueError(f"{where}: labels must be integers, got {line!r}") from e
        bad = [v for v in labels if v < 0 or (num_classes and v >= num_classes)]
        if bad:
            raise ValueError(f"{where}: label {bad[0]} outside [0, {num_classes or 'inf'})")
        path = os.path.join(image_root, path_format.format(fields[0]))
        if check_images:
            check_image(path, where)
        label = labels[0]
        if multi_label:
            label = np.bincount(labels, minlength=num_classes).clip(max=1).astype(float).tolist()
        dicts.append({"file_name": path, "image_id": len(dicts), "label": label})
    if not dicts:
        raise ValueError(f"split file {split_file!r} lists no images")
    return dicts


FLOWERS102_SPLITS = {"train": ("trnid",), "val": ("valid",), "trainval": ("trnid", "valid"),
                     "test": ("tstid",)}


def _load_mat_vector(path: str, key: str) -> np.ndarray:
    from scipy.io import loadmat

    try:
        data = loadmat(path)
    except (OSError, ValueError) as e:
        raise FileNotFoundError(f"{path!r} cannot be read as a MATLAB file: {e}") from e
    if key not in data:
        raise KeyError(f"{path!r} has no variable {key!r} (has "
                       f"{sorted(k for k in data if not k.startswith('__'))})")
    return np.asarray(data[key]).ravel().astype(np.int64)


def flowers102_dicts(root: str = "flowers102", split: str = "trainval",
                     check_images: bool = True) -> list[dict]:
    """Oxford Flowers-102 from the files the owners distribute: ``<root>/jpg/image_%05d.jpg``,
    ``<root>/imagelabels.mat`` (``labels``: 1..102 per image) and ``<root>/setid.mat``
    (``trnid``, ``valid``, ``tstid``: 1-based image numbers).

    Args:
        root: the directory (relative paths: under :func:`datasets_root`).
        split: ``train`` (1,020 images), ``val`` (1,020), ``trainval`` (train then val,
            2,040) or ``test`` (6,149).
        check_images: open every image once to fail early on missing or unreadable files.

    Returns:
        One dict per image in ``setid.mat`` order: ``file_name``, ``image_id`` (the image
        number) and ``label`` (0..101).
    """
    if split not in FLOWERS102_SPLITS:
        raise ValueError(f"Flowers102 split {split!r}: expected one of "
                         f"{sorted(FLOWERS102_SPLITS)}")
    root = _resolve(root)
    labels_file = os.path.join(root, "imagelabels.mat")
    setid_file = os.path.join(root, "setid.mat")
    labels = _load_mat_vector(labels_file, "labels") - 1
    if labels.size == 0 or labels.min() < 0 or labels.max() > 101:
        raise ValueError(f"{labels_file!r}: labels must lie in 1..102, got "
                         f"{labels.min() + 1 if labels.size else 'none'}.."
                         f"{labels.max() + 1 if labels.size else 'none'}")
    dicts = []
    for key in FLOWERS102_SPLITS[split]:
        for number in _load_mat_vector(setid_file, key).tolist():
            if not 1 <= number <= labels.size:
                raise ValueError(f"{setid_file!r}: {key} lists image {number}, but "
                                 f"{labels_file!r} labels images 1..{labels.size}")
            path = os.path.join(root, "jpg", f"image_{number:05d}.jpg")
            if check_images:
                check_image(path, f"{setid_file} ({key})")
            dicts.append({"file_name": path, "image_id": number,
                          "label": int(labels[number - 1])})
    if not dicts:
        raise ValueError(f"{setid_file!r}: split {split!r} lists no images")
    return dicts


def voc_classification_dicts(dataset_name: str = "voc_2007_trainval",
                             multi_label: bool = False) -> list[dict]:
    """Image labels from a registered Pascal VOC detection dataset (detectron2's builtin
    ``voc_2007_{trainval,test}``).

    Args:
        dataset_name: the detection dataset.
        multi_label: multi-hot over the 20 classes of every object in the image; otherwise
            the single label is the class of the image's largest object box (the paper
            evaluates VOC07 as single-label 20-way classification). Objects marked
            ``difficult`` count like the others (detectron2's VOC loader keeps them).

    Returns:
        One dict per image with at least one object.
    """
    from mona_scale.data.catalog import get_dataset_dicts

    from detectron2.data import MetadataCatalog

    num_classes = len(MetadataCatalog.get(dataset_name).thing_classes)
    dicts = []
    for record in get_dataset_dicts(dataset_name, filter_empty=True):
        objects = record["annotations"]
        if multi_label:
            hits = np.bincount([o["category_id"] for o in objects], minlength=num_classes)
            label = hits.clip(max=1).astype(float).tolist()
        else:
            areas = [(o["bbox"][2] - o["bbox"][0]) * (o["bbox"][3] - o["bbox"][1])
                     for o in objects]
            label = objects[int(np.argmax(areas))]["category_id"]
        dicts.append({"file_name": record["file_name"], "image_id": len(dicts),
                      "label": label})
    return dicts
