# Paper recipe (docs/method.md, "Recipes") on Oxford-IIIT Pets: as flowers102_swin_l_mona.py
# (100 epochs, cosine to 1 %, 20-epoch warmup, AdamW 3.125e-5 for Mona / 1.5625e-5 for the
# baselines, wd 0.05, clip 5, batch 16).
from ..common.data.oxford_pets import NUM_CLASSES, TRAIN_IMAGES, dataloader
from .flowers102_swin_l_mona import EPOCHS, lr_multiplier, model, optimizer, train, tuning

ITERS_PER_EPOCH = -(-TRAIN_IMAGES // 16)

model.num_classes = NUM_CLASSES
train.max_iter = EPOCHS * ITERS_PER_EPOCH
train.eval_period = ITERS_PER_EPOCH  # every epoch, as the authors' configs
train.checkpointer.period = 10 * ITERS_PER_EPOCH
train.output_dir = "./output/oxford_pets_swin_l_mona"
