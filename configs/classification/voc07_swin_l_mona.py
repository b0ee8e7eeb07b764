# Paper recipe (docs/method.md, "Recipes") on Pascal VOC 2007 as single-label 20-way
# classification (an image's label: the class of its largest object, our assumption): as
# flowers102_swin_l_mona.py but AdamW 1.5625e-5 for every method. Multi-label (mAP):
# voc07_multilabel_swin_l_mona.py.
from ..common.data.voc07_cls import NUM_CLASSES, TRAIN_IMAGES, dataloader
from .flowers102_swin_l_mona import EPOCHS, lr_multiplier, model, optimizer, train, tuning

ITERS_PER_EPOCH = -(-TRAIN_IMAGES // 16)

model.num_classes = NUM_CLASSES
optimizer.lr = 1.5625e-5
train.max_iter = EPOCHS * ITERS_PER_EPOCH
train.eval_period = ITERS_PER_EPOCH  # every epoch, as the authors' configs
train.checkpointer.period = 10 * ITERS_PER_EPOCH
train.output_dir = "./output/voc07_swin_l_mona"
