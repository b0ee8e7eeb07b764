#!/usr/bin/env python
"""Draw a trained model's predictions on your images: boxes and masks (detection), class
regions (semantic segmentation) or the top-k classes (classification), named by the test
set's class names.

    python projects/demo.py --config-file configs/quickstart/shapes_cascade_mona.py \
        --weights output/demo/cascade_mona/model_final.pth --input 'photos/*.jpg' \
        --output predictions/ [--confidence 0.5] [key=value ...]

``--weights`` is a full weight file (``model_final.pth``, ``python -m mona_scale.export
--full``) or a checkpoint directory; ``--adapter file.safetensors`` loads an adapter export
on top of the config's ``train.init_checkpoint`` (the base model).
"""
from __future__ import annotations

import argparse
import glob
import os
import sys

from mona_scale.console import quiet_third_party

quiet_third_party()

from mona_scale.engine.checkpoint_weights import load_checkpoint_weights  # noqa: E402
from mona_scale.engine.config import load_config  # noqa: E402
from mona_scale.engine.defaults import build_model, load_init_checkpoint  # noqa: E402
from mona_scale.export import load_adapter  # noqa: E402

import torch  # noqa: E402
from detectron2.config import instantiate  # noqa: E402
from detectron2.data import MetadataCatalog  # noqa: E402
from detectron2.data import transforms as T  # noqa: E402
from detectron2.data.detection_utils import read_image  # noqa: E402
from detectron2.utils.visualizer import Visualizer  # noqa: E402

CLASS_KEYS = ("thing_classes", "stuff_classes", "classes")


def adapter_metadata(path: str) -> dict[str, str]:
    """The metadata of an adapter file (base model, tuning config)."""
    from safetensors import safe_open

    with safe_open(path, framework="pt") as f:
        return dict(f.metadata() or {})


def dataset_metadata(dataset):
    """The detectron2 metadata of a config's test dataset node, with its class names.

    A dataset the config builds itself (the synthetic sets, readers that register their
    names) is registered first; if its class names are still unknown, the node is
    instantiated (which registers them) as evaluation would.

    Args:
        dataset: ``cfg.dataloader.test.dataset``.

    Returns:
        The ``Metadata``; an empty one (class ids are drawn) when no name is known.
    """
    name = dataset.get("name", None) or dataset.get("names", None) \
        or dataset.get("dataset_name", None)
    if name is not None and not isinstance(name, str):
        name = name[0]
    if name is None:
        return MetadataCatalog.get("__mona_demo_unnamed__")
    metadata = MetadataCatalog.get(name)
    if not any(metadata.get(k, None) for k in CLASS_KEYS) and "_target_" in dataset:
        try:
            instantiate(dataset)
        except Exception as e:  # noqa: BLE001 (drawing with ids is still useful)
            print(f"note: class names of {name!r} unknown ({type(e).__name__}: {e}); "
                  f"drawing class ids", file=sys.stderr)
        metadata = MetadataCatalog.get(name)
    return metadata


class Predictor:
    """A model from a config and weights, applied to single RGB images.

    Args:
        config_file: the LazyConfig the model was trained with.
        weights: a full weight file (``model_final.pth``) or a checkpoint directory; None
            with ``adapter``: the config's ``train.init_checkpoint`` is the base model.
        overrides: ``key=value`` config overrides.
        adapter: an adapter file (``python -m mona_scale.export --adapter``) loaded on top.
    """

    def __init__(self, config_file: str, weights: str | None, overrides=(),
                 adapter: str | None = None):
        self.cfg = load_config(config_file, [*overrides, "train.device=cpu"])
        self.model = build_model(self.cfg).eval()
        if weights:
            self.model.load_state_dict(load_checkpoint_weights(weights))
        elif adapter:  # the base model: train.init_checkpoint, else the one the file names
            base = self.cfg.train.init_checkpoint or adapter_metadata(adapter).get("base_model")
            if not base:
                raise ValueError(f"{adapter} names no base model: pass --weights or "
                                 f"train.init_checkpoint=<the base weights>")
            load_init_checkpoint(self.model, base)
        if adapter:
            load_adapter(self.model, adapter)
        test = self.cfg.dataloader.test
        self.augmentations = [instantiate(a) for a in test.mapper.augmentations]
        self.metadata = dataset_metadata(test.dataset)

    @torch.no_grad()
    def __call__(self, image) -> dict:
        """The model's output for one HxWx3 RGB uint8 image: a dict with ``instances``,
        ``sem_seg`` or ``logits`` (on the CPU)."""
        aug_input = T.AugInput(image)
        T.AugmentationList(self.augmentations)(aug_input)
        tensor = torch.as_tensor(aug_input.image.transpose(2, 0, 1).copy())
        inputs = [{"image": tensor, "height": image.shape[0], "width": image.shape[1]}]
        return {k: v.to("cpu") for k, v in self.model(inputs)[0].items()
                if hasattr(v, "to")}

    def draw(self, image, confidence: float = 0.5, scale: float = 1.0, topk: int = 5):
        """The image with the predictions drawn on it.

        Args:
            image: HxWx3 RGB uint8.
            confidence: detections scoring at most this are not drawn.
            scale: drawing scale.
            topk: classes listed for a classifier.

        Returns:
            detectron2's ``VisImage`` (its ``ax.texts`` are the drawn labels).
        """
        output = self(image)
        visualizer = Visualizer(image, self.metadata, scale=scale)
        if "instances" in output:
            instances = output["instances"]
            return visualizer.draw_instance_predictions(
                instances[instances.scores > confidence])
        if "sem_seg" in output:
            return visualizer.draw_sem_seg(output["sem_seg"].argmax(dim=0).numpy(),
                                           alpha=0.5)
        if "logits" in output:
            return self._draw_top_classes(visualizer, output["logits"], topk)
        raise KeyError(f"the model's output has none of instances / sem_seg / logits: "
                       f"{sorted(output)}")

    def _draw_top_classes(self, visualizer, logits, topk: int):
        names = self.metadata.get("classes", None) or self.metadata.get("thing_classes", None)
        multilabel = bool(getattr(self.model, "multi_label", False))
        probs = logits.sigmoid() if multilabel else logits.softmax(dim=0)
        values, ids = probs.topk(min(topk, probs.numel()))
        height = visualizer.output.height
        font = max(10, height // 16) * visualizer.output.scale
        for row, (p, i) in enumerate(zip(values.tolist(), ids.tolist(), strict=True)):
            label = names[i] if names else str(i)
            visualizer.draw_text(f"{label} {100 * p:.0f}%", (4, 4 + row * font * 1.4),
                                 font_size=font, color="w" if row else "yellow",
                                 horizontal_alignment="left")
        return visualizer.output


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config-file", required=True)
    parser.add_argument("--weights", help="model_final.pth, a --full export or a checkpoint "
                        "directory")
    parser.add_argument("--adapter", help="an adapter export (.safetensors) on top of the "
                        "base model (train.init_checkpoint, or --weights)")
    parser.add_argument("--input", nargs="+", required=True, help="image files or globs")
    parser.add_argument("--output", required=True, help="directory for the drawings")
    parser.add_argument("--confidence", type=float, default=0.5)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--topk", type=int, default=5, help="classes listed (classifiers)")
    parser.add_argument("opts", nargs="*", help="config overrides key=value")
    args = parser.parse_args(argv)
    if not (args.weights or args.adapter):
        parser.error("give --weights and/or --adapter")
    files = sorted({f for pattern in args.input for f in glob.glob(os.path.expanduser(pattern))})
    if not files:
        parser.error(f"no image matches {args.input}")
    predictor = Predictor(args.config_file, args.weights, args.opts, adapter=args.adapter)
    os.makedirs(args.output, exist_ok=True)
    for path in files:
        drawing = predictor.draw(read_image(path, format="RGB"), args.confidence, args.scale,
                                 args.topk)
        out = os.path.join(args.output, os.path.splitext(os.path.basename(path))[0] + ".png")
        drawing.save(out)
        print(f"{path} -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
