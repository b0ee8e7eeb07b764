# The synthetic semantic-segmentation set (coloured shapes, 128x128, classes background /
# circle / square / triangle, 255 on shape edges), generated on first use under
# $MONA_DATASETS (default ./datasets/synthetic), with the ADE20K pipeline at 1/4 scale:
# ratio 0.5-2.0 of 512x128, 128x128 crops, flip, photometric distortion; test short side 128.
from mona_scale.data import synthetic_dataset_dicts

from detectron2.config import LazyCall as L

from .ade20k import dataloader

dataloader.train.dataset = L(synthetic_dataset_dicts)(name="shapes_sem_train", num_images=400)
dataloader.train.mapper.augmentations[0].scale = (512, 128)
dataloader.train.mapper.augmentations[1].crop_size = (128, 128)
dataloader.train.total_batch_size = 8
dataloader.train.num_workers = 1
dataloader.test.dataset = L(synthetic_dataset_dicts)(name="shapes_sem_val", num_images=80)
dataloader.test.mapper.augmentations[0].update(short_edge_length=128, max_size=512)
dataloader.test.num_workers = 1
dataloader.evaluator.dataset_name = "${..test.dataset.name}"
