# Oxford Flowers-102 read from the files the owners distribute, under $DETECTRON2_DATASETS:
#   flowers102/jpg/image_00001.jpg ... image_08189.jpg
#   flowers102/imagelabels.mat   (labels 1..102 -> 0..101)
#   flowers102/setid.mat         (trnid + valid = train 2,040 images; tstid = test 6,149)
# The split is our assumption: the owners' train+val for training and their test set for
# evaluation (the authors trained from label files, train2mmcls.txt / test2mmcls.txt, that
# they did not publish). Split files ("<path> <label>" lines) stay supported:
#   dataloader.train.dataset = L(split_file_dicts)(split_file=..., num_classes=102)
from mona_scale.data.cls_readers import flowers102_dicts

from detectron2.config import LazyCall as L

from .classification import dataloader

NUM_CLASSES = 102
TRAIN_IMAGES = 2040

# check_images=False: every rank would open all 8,189 images at start; check the data once
# with `python -m mona_scale.data.check --config-file <config>` instead
dataloader.train.dataset = L(flowers102_dicts)(root="flowers102", split="trainval",
                                               check_images=False)
dataloader.test.dataset = L(flowers102_dicts)(root="flowers102", split="test",
                                              check_images=False)
dataloader.evaluator.dataset_name = "flowers102_test"
