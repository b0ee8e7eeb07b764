# Pascal VOC 07+12 trainval for training, VOC 2007 test for AP50 (11-point VOC07 metric),
# images resized to 1000x600 (short side 600, long side <= 1000, OpenCV bilinear as mmdet)
# as in the paper.
# Training leaves out the objects marked difficult, as the authors' mmdet does (images whose
# objects are all difficult train as background); evaluation keeps them, marked difficult
# (VOC's protocol: neither hits nor misses).
from mona_scale.data.catalog import get_dataset_dicts
from mona_scale.data.cv2_resize import Cv2ResizeShortestEdge
from mona_scale.data.loader import build_train_loader
from mona_scale.data.voc_difficult import voc_dicts_without_difficult

import detectron2.data.transforms as T
from detectron2.config import LazyCall as L
from detectron2.data import DatasetMapper, build_detection_test_loader
from detectron2.evaluation import PascalVOCDetectionEvaluator
from omegaconf import OmegaConf

dataloader = OmegaConf.create()
dataloader.train = L(build_train_loader)(  # resumable: exact data position on --resume
    dataset=L(voc_dicts_without_difficult)(names=["voc_2007_trainval", "voc_2012_trainval"]),
    mapper=L(DatasetMapper)(
        is_train=True,
        augmentations=[
            L(Cv2ResizeShortestEdge)(short_edge_length=600, max_size=1000),
            L(T.RandomFlip)(horizontal=True),
        ],
        image_format="RGB",
    ),
    total_batch_size=2,
    num_workers=4,
    seed="${train.seed}",  # the stream is a function of (seed, rank, position)
)
dataloader.test = L(build_detection_test_loader)(
    dataset=L(get_dataset_dicts)(names="voc_2007_test", filter_empty=False),
    mapper=L(DatasetMapper)(
        is_train=False,
        augmentations=[L(Cv2ResizeShortestEdge)(short_edge_length=600, max_size=1000)],
        image_format="RGB",
    ),
    num_workers=4,
)
dataloader.evaluator = L(PascalVOCDetectionEvaluator)(dataset_name="voc_2007_test")
