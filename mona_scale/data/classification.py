"""Classification data: the dataset mapper (image file -> tensor, label)."""
from __future__ import annotations

import numpy as np
import torch
from detectron2.data import detection_utils as utils
from detectron2.data import transforms as T

__all__ = ["ClassificationMapper"]


class ClassificationMapper:
    """Reads ``file_name``, applies augmentations, returns ``image`` (CHW) and ``label``.

    Args:
        is_train: training mode (kept for symmetry with detectron2's DatasetMapper).
        augmentations: detectron2 augmentations.
        image_format: ``RGB`` or ``BGR``.
    """

    def __init__(self, is_train: bool, augmentations, image_format: str = "RGB"):
        self.is_train = is_train
        self.augmentations = T.AugmentationList(list(augmentations))
        self.image_format = image_format

    def __call__(self, dataset_dict: dict) -> dict:
        try:
            image = utils.read_image(dataset_dict["file_name"], format=self.image_format)
        except (OSError, ValueError) as e:
            raise OSError(f"cannot read image {dataset_dict['file_name']!r}: {e}") from e
        aug_input = T.AugInput(image)
        self.augmentations(aug_input)
        image = np.ascontiguousarray(aug_input.image.transpose(2, 0, 1))
        return {"image": torch.as_tensor(image), "label": dataset_dict["label"],
                "file_name": dataset_dict["file_name"], "height": image.shape[1],
                "width": image.shape[2]}
