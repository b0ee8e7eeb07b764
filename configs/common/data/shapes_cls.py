# The synthetic classification set (one coloured shape per 64x64 image, 3 classes),
# generated on first use under $MONA_DATASETS (default ./datasets/synthetic).
from mona_scale.data import synthetic_dataset_dicts
from mona_scale.data.classification import ClassificationMapper
from mona_scale.data.loader import build_train_loader
from mona_scale.evaluation import ClassificationEvaluator

import detectron2.data.transforms as T
from detectron2.config import LazyCall as L
from detectron2.data import build_detection_test_loader
from omegaconf import OmegaConf

dataloader = OmegaConf.create()
dataloader.train = L(build_train_loader)(  # resumable: exact data position on --resume
    dataset=L(synthetic_dataset_dicts)(name="shapes_cls_train", num_images=4000),
    mapper=L(ClassificationMapper)(
        is_train=True,
        augmentations=[L(T.RandomFlip)(horizontal=True), L(T.Resize)(shape=(64, 64))],
    ),
    total_batch_size=32,
    num_workers=1,
    seed="${train.seed}",  # the stream is a function of (seed, rank, position)
)
dataloader.test = L(build_detection_test_loader)(
    dataset=L(synthetic_dataset_dicts)(name="shapes_cls_val", num_images=150),
    mapper=L(ClassificationMapper)(is_train=False, augmentations=[L(T.Resize)(shape=(64, 64))]),
    num_workers=1,
)
dataloader.evaluator = L(ClassificationEvaluator)(dataset_name="${..test.dataset.name}",
                                                  topk=(1,))
