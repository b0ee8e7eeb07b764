# COCO 2017 with the DETR-style multi-scale augmentation of the paper's recipe: flip, then
# either a multi-scale resize (short side 480..800, long <= 1333) or resize (400/500/600)
# -> random crop (384..600 absolute) -> multi-scale resize. Test at 1333x800. As the authors'
# mmdet 2.11 pipeline: every resize OpenCV bilinear; a crop clips the boxes (they are not
# recomputed from the cropped masks) and keeps crops without objects.
from mona_scale.data.catalog import get_dataset_dicts
from mona_scale.data.cv2_resize import Cv2ResizeShortestEdge
from mona_scale.data.loader import build_train_loader
from mona_scale.data.transforms import RandomChoice
from mona_scale.evaluation import FastCOCOEvaluator

import detectron2.data.transforms as T
from detectron2.config import LazyCall as L
from detectron2.data import DatasetMapper, build_detection_test_loader
from omegaconf import OmegaConf

MULTI_SCALE = L(Cv2ResizeShortestEdge)(
    short_edge_length=tuple(range(480, 801, 32)), max_size=1333, sample_style="choice")

dataloader = OmegaConf.create()
dataloader.train = L(build_train_loader)(  # resumable: exact data position on --resume
    dataset=L(get_dataset_dicts)(names="coco_2017_train"),
    mapper=L(DatasetMapper)(
        is_train=True,
        augmentations=[
            L(T.RandomFlip)(horizontal=True),
            L(RandomChoice)(choices=[
                [MULTI_SCALE],
                [
                    L(Cv2ResizeShortestEdge)(short_edge_length=(400, 500, 600), max_size=1333,
                                            sample_style="choice"),
                    L(T.RandomCrop)(crop_type="absolute_range", crop_size=(384, 600)),
                    MULTI_SCALE,
                ],
            ]),
        ],
        image_format="RGB",
        use_instance_mask=True,
        recompute_boxes=False,  # mmdet 2.11's RandomCrop clips the boxes
    ),
    total_batch_size=16,
    num_workers=4,
    seed="${train.seed}",  # the stream is a function of (seed, rank, position)
)
dataloader.test = L(build_detection_test_loader)(
    dataset=L(get_dataset_dicts)(names="coco_2017_val", filter_empty=False),
    mapper=L(DatasetMapper)(
        is_train=False,
        augmentations=[L(Cv2ResizeShortestEdge)(short_edge_length=800, max_size=1333)],
        image_format="RGB",
    ),
    num_workers=4,
)
# COCO AP from faster-coco-eval's C++ COCOeval (pycocotools when it is missing; equal numbers)
dataloader.evaluator = L(FastCOCOEvaluator)(
    dataset_name="${..test.dataset.names}",
    output_dir="${train.output_dir}/inference",
)
