# Pascal VOC 2007 image classification from detectron2's builtin VOC detection sets
# (VOCdevkit's VOC2007/{Annotations,ImageSets/Main,JPEGImages} under $DETECTRON2_DATASETS,
# trainval and test archives extracted into the same folder); trainval 5,011 / test 4,952.
# The paper reports single-label 20-way accuracy, but the authors' label files
# (train2mmcls.txt / test2mmcls.txt) are unpublished: our rule, an assumption, labels an image
# with the class of its largest object box, objects marked difficult included.
# The multi-label variant (multi_label=True: every object class, difficult included, mAP) is
# voc07_cls_multilabel.py.
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
