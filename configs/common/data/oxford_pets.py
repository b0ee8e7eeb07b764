# Oxford-IIIT Pets read from the files the owners distribute, under $DETECTRON2_DATASETS
# (annotation lines "<image name> <class 1..37> <species> <breed id>"; 37 classes):
#   oxford_pets/images/Abyssinian_1.jpg ...
#   oxford_pets/annotations/{trainval,test}.txt   (3,680 / 3,669 images)
# A few files named .jpg hold PNG (some RGBA) or GIF data; detectron2's read_image decodes
# them (and applies EXIF orientation) to RGB. The split is our assumption: the owners'
# trainval for training and test for evaluation (the authors' label files are unpublished).
from mona_scale.data.cls_readers import split_file_dicts

from detectron2.config import LazyCall as L

from .classification import dataloader

NUM_CLASSES = 37
TRAIN_IMAGES = 3680

# check_images=False: every rank would open all 7,349 images at start; check the data once
# with `python -m mona_scale.data.check --config-file <config>` instead
dataloader.train.dataset = L(split_file_dicts)(
    split_file="oxford_pets/annotations/trainval.txt", image_root="oxford_pets",
    num_classes=NUM_CLASSES, path_format="images/{}.jpg", label_offset=-1,
    ignore_extra_columns=True, check_images=False)
dataloader.test.dataset = L(split_file_dicts)(
    split_file="oxford_pets/annotations/test.txt", image_root="oxford_pets",
    num_classes=NUM_CLASSES, path_format="images/{}.jpg", label_offset=-1,
    ignore_extra_columns=True, check_images=False)
dataloader.evaluator.dataset_name = "oxford_pets_test"
