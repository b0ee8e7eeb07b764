# Pascal VOC 2007 multi-label classification: multi-hot labels over the 20 classes of every
# object in an image, evaluated by mAP (see voc07_cls.py for the data layout).
from .voc07_cls import NUM_CLASSES, TRAIN_IMAGES, dataloader

dataloader.train.dataset.multi_label = True
dataloader.test.dataset.multi_label = True
dataloader.evaluator.multi_label = True
