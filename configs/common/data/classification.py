# Image classification loaders with the paper's transforms (docs/method.md, "Recipes"; the
# authors' mmcls 0.25 pipeline): train RandomResizedCrop 224 + horizontal flip; test resize
# the short side to 256 and centre-crop 224; every resize OpenCV bilinear (mmcls' default,
# which the authors keep). Evaluation every epoch, as the authors' configs do, is set by the
# recipe files. Dataset nodes are set by the per-dataset files (flowers102.py,
# oxford_pets.py, voc07_cls.py).
from mona_scale.data.classification import ClassificationMapper
from mona_scale.data.cls_transforms import CenterCrop, RandomResizedCrop, ResizeShortSide
from mona_scale.data.loader import build_train_loader
from mona_scale.evaluation import ClassificationEvaluator

import detectron2.data.transforms as T
from detectron2.config import LazyCall as L
from detectron2.data import build_detection_test_loader
from omegaconf import OmegaConf

dataloader = OmegaConf.create()
dataloader.train = L(build_train_loader)(  # resumable: exact data position on --resume
    dataset=None,
    mapper=L(ClassificationMapper)(
        is_train=True,
        augmentations=[L(RandomResizedCrop)(size=224, interp="bilinear"),
                       L(T.RandomFlip)(horizontal=True)],
    ),
    total_batch_size=16,
    num_workers=4,
    seed="${train.seed}",  # the stream is a function of (seed, rank, position)
    # every image is cropped to 224x224, so grouping by aspect ratio is pointless (and the
    # readers give no sizes)
    aspect_ratio_grouping=False,
)
dataloader.test = L(build_detection_test_loader)(
    dataset=None,
    mapper=L(ClassificationMapper)(
        is_train=False,
        augmentations=[
            L(ResizeShortSide)(short_edge_length=256, interp="bilinear"),
            L(CenterCrop)(size=224),
        ],
    ),
    num_workers=4,
)
dataloader.evaluator = L(ClassificationEvaluator)(dataset_name="", topk=(1, 5))
