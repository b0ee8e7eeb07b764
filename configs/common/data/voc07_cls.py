# Pascal VOC 2007 image classification from detectron2's builtin VOC detection sets
# (datasets/VOC2007/{Annotations,ImageSets/Main,JPEGImages}); trainval 5,011 / test 4,952.
# As in the paper, single-label 20-way: an image's label is the class of its largest object.
# The multi-label variant (multi_label=True: every object class, mAP) is voc07_cls_multilabel.py.
from mona_scale.data.cls_readers import voc_classification_dicts

from detectron2.config import LazyCall as L

from .classification import dataloader

NUM_CLASSES = 20
TRAIN_IMAGES = 5011

dataloader.train.dataset = L(voc_classification_dicts)(dataset_name="voc_2007_trainval",
                                                       multi_label=False)
dataloader.test.dataset = L(voc_classification_dicts)(dataset_name="voc_2007_test",
                                                      multi_label=False)
dataloader.evaluator.dataset_name = "voc_2007_test"
