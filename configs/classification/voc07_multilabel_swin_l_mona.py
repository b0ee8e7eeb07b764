# VOC 2007 multi-label classification (not in the paper): the voc07_swin_l_mona.py recipe
# with multi-hot labels of every object class, binary cross-entropy and mAP.
from ..common.data.voc07_cls_multilabel import dataloader
from .voc07_swin_l_mona import lr_multiplier, model, optimizer, train, tuning

model.multi_label = True
train.output_dir = "./output/voc07_multilabel_swin_l_mona"
