#!/usr/bin/env python
"""Draw a trained model's predictions (boxes, masks, classes) on your images.

    python projects/demo.py --config-file configs/quickstart/shapes_cascade_mona.py \
        --weights output/demo/cascade_mona/model_final.pth --input 'photos/*.jpg' \
        --output predictions/ [--confidence 0.5] [key=value ...]
"""
from __future__ import annotations

import argparse
import glob
import os
import sys

from mona_scale.engine.checkpoint import AtomicCheckpointer
from mona_scale.engine.config import load_config
from mona_scale.engine.defaults import build_model

import torch
from detectron2.config import instantiate
from detectron2.data import MetadataCatalog
from detectron2.data.detection_utils import read_image
from detectron2.utils.visualizer import Visualizer


class Predictor:
    """A model from a config and weights, applied to single RGB images.

    Args:
        config_file: the LazyConfig the model was trained with.
        weights: a checkpoint of the whole model (e.g. ``model_final.pth``).
        overrides: ``key=value`` config overrides.
    """

    def __init__(self, config_file: str, weights: str, overrides=()):
        self.cfg = load_config(config_file, [*overrides, "train.output_dir=/tmp/mona_demo"])
        self.model = build_model(self.cfg).eval()
        AtomicCheckpointer(self.model).load(weights, checkpointables=[])
        test = self.cfg.dataloader.test
        self.augmentations = [instantiate(a) for a in test.mapper.augmentations]
        dataset = test.dataset
        name = dataset.get("name", None) or dataset.get("names", None)
        self.metadata = MetadataCatalog.get(name if isinstance(name, str) else name[0])

    @torch.no_grad()
    def __call__(self, image):
        """Predictions (detectron2 ``Instances``) for one HxWx3 RGB uint8 image."""
        from detectron2.data import transforms as T
        aug_input = T.AugInput(image)
        T.AugmentationList(self.augmentations)(aug_input)
        tensor = torch.as_tensor(aug_input.image.transpose(2, 0, 1).copy())
        inputs = [{"image": tensor, "height": image.shape[0], "width": image.shape[1]}]
        return self.model(inputs)[0]["instances"].to("cpu")

    def draw(self, image, confidence: float = 0.5, scale: float = 1.0):
        """The image with predictions above ``confidence`` drawn on it (VisImage)."""
        instances = self(image)
        instances = instances[instances.scores > confidence]
        return Visualizer(image, self.metadata, scale=scale).draw_instance_predictions(instances)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config-file", required=True)
    parser.add_argument("--weights", required=True)
    parser.add_argument("--input", nargs="+", required=True, help="image files or globs")
    parser.add_argument("--output", required=True, help="directory for the drawings")
    parser.add_argument("--confidence", type=float, default=0.5)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("opts", nargs="*", help="config overrides key=value")
    args = parser.parse_args(argv)
    files = sorted({f for pattern in args.input for f in glob.glob(os.path.expanduser(pattern))})
    if not files:
        parser.error(f"no image matches {args.input}")
    predictor = Predictor(args.config_file, args.weights, args.opts)
    os.makedirs(args.output, exist_ok=True)
    for path in files:
        drawing = predictor.draw(read_image(path, format="RGB"), args.confidence, args.scale)
        out = os.path.join(args.output, os.path.splitext(os.path.basename(path))[0] + ".png")
        drawing.save(out)
        print(f"{path} -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
