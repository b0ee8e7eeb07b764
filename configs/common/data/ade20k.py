# ADE20K as distributed (ade20k_train / ade20k_val, registered by mona_scale.data.ade20k):
#   ADEChallengeData2016/images/{training,validation}/ADE_*.jpg under $DETECTRON2_DATASETS
#   ADEChallengeData2016/annotations/{training,validation}/ADE_*.png  (0 = other, 1..150)
# labels are converted when read (0 -> 255 ignored, k -> k-1), for training and evaluation;
# detectron2's converted annotations_detectron2/ is used as is when present.
# With the paper's augmentation (mmseg's): keep-ratio resize into 2048x512 times a ratio in
# [0.5, 2.0], a 512x512 crop in which no class covers more than 75 %, horizontal flip,
# photometric distortion; the model pads each training batch to the crop size. Test: whole
# image resized to 2048x512 keep-ratio (short side 512, long side <= 2048, OpenCV bilinear
# as mmseg); predictions are resized back to the original size for the evaluator.
import mona_scale.data.ade20k  # noqa: F401  (registers ade20k_train / ade20k_val)
from mona_scale.data.catalog import get_dataset_dicts
from mona_scale.data.cv2_resize import Cv2ResizeShortestEdge
from mona_scale.data.loader import build_train_loader
from mona_scale.data.seg_transforms import ResizeRatioRange

import detectron2.data.transforms as T
from detectron2.config import LazyCall as L
from detectron2.data import DatasetMapper, build_detection_test_loader
from detectron2.evaluation import SemSegEvaluator
from detectron2.projects.point_rend import ColorAugSSDTransform
from omegaconf import OmegaConf

dataloader = OmegaConf.create()
dataloader.train = L(build_train_loader)(  # resumable: exact data position on --resume
    dataset=L(get_dataset_dicts)(names="ade20k_train"),
    mapper=L(DatasetMapper)(
        is_train=True,
        augmentations=[
            L(ResizeRatioRange)(scale=(2048, 512), ratio_range=(0.5, 2.0)),
            L(T.RandomCrop_CategoryAreaConstraint)(
                crop_type="absolute", crop_size=(512, 512), single_category_max_area=0.75,
                ignored_category=255),
            L(T.RandomFlip)(horizontal=True),
            L(ColorAugSSDTransform)(img_format="RGB"),
        ],
        image_format="RGB",
    ),
    total_batch_size=16,
    num_workers=4,
    seed="${train.seed}",  # the stream is a function of (seed, rank, position)
    aspect_ratio_grouping=False,  # every image is cropped to 512x512; records carry no sizes
)
dataloader.test = L(build_detection_test_loader)(
    dataset=L(get_dataset_dicts)(names="ade20k_val", filter_empty=False),
    mapper=L(DatasetMapper)(
        is_train=False,
        augmentations=[L(Cv2ResizeShortestEdge)(short_edge_length=512, max_size=2048)],
        image_format="RGB",
    ),
    num_workers=4,
)
dataloader.evaluator = L(SemSegEvaluator)(
    dataset_name="${..test.dataset.names}",
    output_dir="${train.output_dir}/inference",
)
