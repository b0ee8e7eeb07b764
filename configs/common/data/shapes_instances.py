# The synthetic instance-segmentation set (coloured shapes with masks, 128x128), generated
# on first use under $MONA_DATASETS (default ./datasets/synthetic).
from mona_scale.data import synthetic_dataset_dicts
from mona_scale.data.loader import build_train_loader
from mona_scale.evaluation import FastCOCOEvaluator

import detectron2.data.transforms as T
from detectron2.config import LazyCall as L
from detectron2.data import DatasetMapper, build_detection_test_loader
from omegaconf import OmegaConf

dataloader = OmegaConf.create()
dataloader.train = L(build_train_loader)(  # resumable: exact data position on --resume
    dataset=L(synthetic_dataset_dicts)(name="shapes_instances_train", num_images=400),
    mapper=L(DatasetMapper)(
        is_train=True,
        augmentations=[
            L(T.ResizeShortestEdge)(short_edge_length=(112, 128, 144), max_size=256,
                                    sample_style="choice"),
            L(T.RandomFlip)(horizontal=True),
        ],
        image_format="RGB",
        use_instance_mask=True,
        instance_mask_format="bitmask",
    ),
    total_batch_size=8,
    num_workers=1,
    seed="${train.seed}",  # the stream is a function of (seed, rank, position)
)
dataloader.test = L(build_detection_test_loader)(
    dataset=L(synthetic_dataset_dicts)(name="shapes_instances_val", num_images=80),
    mapper=L(DatasetMapper)(
        is_train=False,
        augmentations=[L(T.ResizeShortestEdge)(short_edge_length=128, max_size=256)],
        image_format="RGB",
    ),
    num_workers=1,
)
# COCO AP from faster-coco-eval's C++ COCOeval (pycocotools when it is missing; equal numbers)
dataloader.evaluator = L(FastCOCOEvaluator)(
    dataset_name="${..test.dataset.name}",
    output_dir="${train.output_dir}/inference",
)
