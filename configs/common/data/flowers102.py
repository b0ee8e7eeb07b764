# Oxford Flowers-102 from split files (lines "<path relative to flowers102/> <label 0..101>"):
#   datasets/flowers102/jpg/image_00001.jpg ...
#   datasets/flowers102/meta/{trainval,test}.txt   (train+val: 2,040 images; test: 6,149)
from mona_scale.data.cls_readers import split_file_dicts

from detectron2.config import LazyCall as L

from .classification import dataloader

NUM_CLASSES = 102
TRAIN_IMAGES = 2040

dataloader.train.dataset = L(split_file_dicts)(
    split_file="flowers102/meta/trainval.txt", image_root="flowers102", num_classes=NUM_CLASSES)
dataloader.test.dataset = L(split_file_dicts)(
    split_file="flowers102/meta/test.txt", image_root="flowers102", num_classes=NUM_CLASSES)
dataloader.evaluator.dataset_name = "flowers102_test"
