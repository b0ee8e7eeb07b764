"""Classification: evaluator on hand-built predictions, the multi-label (BCE) classifier,
the ImageFolder / split-file / VOC readers (with missing and unreadable files) and the
train / test augmentations."""
from __future__ import annotations

import math

from mona_scale.data.cls_readers import (
    image_folder_dicts,
    split_file_dicts,
    voc_classification_dicts,
)
from mona_scale.data.cls_transforms import CenterCrop, RandomResizedCrop
from mona_scale.evaluation import ClassificationEvaluator, mean_average_precision
from mona_scale.modeling import ImageClassifier

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data import transforms as T
from detectron2.data.datasets import register_pascal_voc
from PIL import Image


def write_image(path, size=(8, 6), value=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size[1], size[0], 3), value, np.uint8)).save(path)
    return path


# --------------------------------------------------------------------------- evaluator
LOGITS = torch.tensor([[3.0, 2.0, 1.0, 0.0],   # label 0: top-1
                       [0.0, 3.0, 2.0, 1.0],   # label 2: top-2
                       [1.0, 0.0, 3.0, 2.0],   # label 1: top-4 only
                       [2.0, 1.0, 0.0, 3.0]])  # label 0: top-2


def run_evaluator(evaluator, logits, labels):
    evaluator.reset()
    half = len(logits) // 2  # two process() calls, as batches arrive
    for rows in (slice(0, half), slice(half, None)):
        evaluator.process([{"label": y} for y in labels[rows]],
                          [{"logits": x} for x in logits[rows]])
    return evaluator.evaluate()["classification"]


def test_topk_accuracy_on_hand_built_logits():
    result = run_evaluator(ClassificationEvaluator("t", topk=(1, 2, 5)), LOGITS, [0, 2, 1, 0])
    assert result == {"top1": 25.0, "top2": 75.0, "top5": 100.0}  # top-5 of 4 classes: all


def test_multilabel_map_on_hand_built_scores():
    scores = torch.tensor([[4.0, 0.0], [3.0, 1.0], [2.0, 3.0], [1.0, 2.0]])
    targets = [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, 0.0]]
    # class 0: positives ranked 1st and 3rd -> AP (1/1 + 2/3) / 2; class 1: positives ranked
    # 1st (score 3) and 3rd (score 1) -> the same
    expected = 100 * (1 + 2 / 3) / 2
    result = run_evaluator(ClassificationEvaluator("t", multi_label=True), scores, targets)
    assert result == {"mAP": pytest.approx(expected)}
    with_empty = np.array([[1.0, 0.0, 0.0]] * 2 + [[0.0, 1.0, 0.0]] * 2)
    scores3 = np.array([[0.9, 0.1, 0.5], [0.8, 0.2, 0.5], [0.1, 0.7, 0.5], [0.2, 0.6, 0.5]])
    assert mean_average_precision(scores3, with_empty) == 100.0  # class 2 has no positives


# --------------------------------------------------------------------------- model
@pytest.mark.parametrize("multi_label", [False, True])
def test_classifier_losses(tiny_swin, multi_label):
    model = ImageClassifier(tiny_swin("mona", out_features=["res5"]), 4,
                            multi_label=multi_label).train()
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    labels = [[1.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]] if multi_label else [2, 3]
    batch = [{"image": torch.rand(3, 48, 40) * 255, "label": y} for y in labels]
    loss = model(batch)["loss_cls"]
    logits = model.logits(batch)
    if multi_label:
        expected = F.binary_cross_entropy_with_logits(logits, torch.tensor(labels))
    else:
        expected = F.cross_entropy(logits, torch.tensor(labels))
    assert torch.allclose(loss, expected, rtol=1e-5)
    model.eval()
    out = model(batch)
    assert out[0]["logits"].shape == (4,) and out[0]["pred_class"] == int(out[0]["logits"].argmax())


# --------------------------------------------------------------------------- readers
def test_image_folder(tmp_path):
    for name in ["b/x.png", "b/sub/y.jpg", "a/z.png"]:
        write_image(tmp_path / name)
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "readme.txt").write_text("not an image")  # skipped by suffix
    dicts = image_folder_dicts(str(tmp_path))
    assert [(d["file_name"][len(str(tmp_path)) + 1:], d["label"]) for d in dicts] == [
        ("a/z.png", 0), ("b/x.png", 1), ("b/sub/y.jpg", 1)]  # class "c" has no images
    assert [d["image_id"] for d in dicts] == [0, 1, 2]
    assert [d["label"] for d in image_folder_dicts(str(tmp_path), classes=["b", "a"])] == [
        0, 0, 1]
    with pytest.raises(FileNotFoundError, match="class directories \\['dog'\\]"):
        image_folder_dicts(str(tmp_path), classes=["a", "dog"])
    with pytest.raises(FileNotFoundError, match="missing_root"):
        image_folder_dicts(str(tmp_path / "missing_root"))


def test_image_folder_names_an_unreadable_image(tmp_path):
    write_image(tmp_path / "a" / "good.png")
    (tmp_path / "a" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(OSError, match=r"broken\.png' is not a readable image"):
        image_folder_dicts(str(tmp_path))


def test_split_file_relative_to_datasets_root(tmp_path, monkeypatch):
    monkeypatch.setenv("DETECTRON2_DATASETS", str(tmp_path))
    for i in range(3):
        write_image(tmp_path / "flowers" / "jpg" / f"{i}.jpg")
    (tmp_path / "flowers" / "train.txt").write_text(
        "# comment\njpg/0.jpg 4\n\njpg/1.jpg 0\njpg/2.jpg 101\n")
    dicts = split_file_dicts("flowers/train.txt", num_classes=102)
    assert [d["label"] for d in dicts] == [4, 0, 101]
    assert dicts[0]["file_name"] == str(tmp_path / "flowers" / "jpg" / "0.jpg")
    with pytest.raises(ValueError, match=r"train.txt:5: label 101 outside \[0, 100\)"):
        split_file_dicts("flowers/train.txt", num_classes=100)


def test_split_file_pets_format_and_multi_label(tmp_path):
    write_image(tmp_path / "images" / "Abyssinian_1.jpg")
    write_image(tmp_path / "images" / "yorkshire_terrier_9.jpg")
    pets = tmp_path / "trainval.txt"
    pets.write_text("Abyssinian_1 1 1 1\nyorkshire_terrier_9 37 2 25\n")
    dicts = split_file_dicts(str(pets), path_format="images/{}.jpg", label_offset=-1,
                             num_classes=37, ignore_extra_columns=True)
    assert [d["label"] for d in dicts] == [0, 36]
    with pytest.raises(ValueError, match=r"trainval.txt:1: expected '<path> <label>'"):
        split_file_dicts(str(pets), path_format="images/{}.jpg", label_offset=-1)
    multi = tmp_path / "multi.txt"
    multi.write_text("images/Abyssinian_1.jpg 0 2 2\nimages/yorkshire_terrier_9.jpg 3\n")
    dicts = split_file_dicts(str(multi), multi_label=True, num_classes=4)
    assert [d["label"] for d in dicts] == [[1.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]]


def test_split_file_errors_name_the_file_and_line(tmp_path):
    write_image(tmp_path / "ok.png")
    (tmp_path / "bad.png").write_bytes(b"\x89PNG truncated")
    lines = {"missing": "ok.png 0\nnot_there.png 1\n", "unreadable": "ok.png 0\nbad.png 1\n",
             "label": "ok.png cat\n"}
    for name, text in lines.items():
        (tmp_path / f"{name}.txt").write_text(text)
    with pytest.raises(FileNotFoundError, match=r"missing.txt:2: image '.*not_there.png' does"):
        split_file_dicts(str(tmp_path / "missing.txt"))
    with pytest.raises(OSError, match=r"unreadable.txt:2: image '.*bad.png' is not a readable"):
        split_file_dicts(str(tmp_path / "unreadable.txt"))
    with pytest.raises(ValueError, match=r"label.txt:1: labels must be integers"):
        split_file_dicts(str(tmp_path / "label.txt"))
    with pytest.raises(FileNotFoundError, match=r"split file '.*nope.txt' cannot be read"):
        split_file_dicts(str(tmp_path / "nope.txt"))


VOC_XML = """<annotation><size><width>100</width><height>80</height></size>{}</annotation>"""
VOC_OBJECT = ("<object><name>{}</name><difficult>0</difficult><bndbox><xmin>{}</xmin>"
              "<ymin>{}</ymin><xmax>{}</xmax><ymax>{}</ymax></bndbox></object>")


@pytest.fixture
def tiny_voc(tmp_path):
    """Two annotated VOC images registered as ``tiny_voc_test``."""
    objects = {"000001": [("dog", 1, 1, 20, 20), ("cat", 1, 1, 60, 50), ("dog", 5, 5, 9, 9)],
               "000002": [("person", 10, 10, 30, 70)]}
    for sub in ("Annotations", "ImageSets/Main", "JPEGImages"):
        (tmp_path / sub).mkdir(parents=True)
    for image_id, boxes in objects.items():
        write_image(tmp_path / "JPEGImages" / f"{image_id}.jpg", (100, 80))
        (tmp_path / "Annotations" / f"{image_id}.xml").write_text(
            VOC_XML.format("".join(VOC_OBJECT.format(*b) for b in boxes)))
    (tmp_path / "ImageSets/Main/test.txt").write_text("000001\n000002\n")
    register_pascal_voc("tiny_voc_test", str(tmp_path), "test", 2007)
    yield
    DatasetCatalog.remove("tiny_voc_test")
    MetadataCatalog.remove("tiny_voc_test")


def test_voc_labels_single_is_the_largest_object(tiny_voc):
    classes = MetadataCatalog.get("tiny_voc_test").thing_classes
    single = voc_classification_dicts("tiny_voc_test")
    assert [classes[d["label"]] for d in single] == ["cat", "person"]
    multi = voc_classification_dicts("tiny_voc_test", multi_label=True)
    assert [[classes[i] for i, v in enumerate(d["label"]) if v] for d in multi] == [
        ["cat", "dog"], ["person"]]


# --------------------------------------------------------------------------- transforms
def test_random_resized_crop_and_center_crop():
    image = np.random.default_rng(0).integers(0, 255, (60, 90, 3), dtype=np.uint8)
    np.random.seed(0)
    for _ in range(20):
        out = T.AugmentationList([RandomResizedCrop(32)])(aug := T.AugInput(image.copy()))
        assert aug.image.shape == (32, 32, 3) and out is not None
    crop = RandomResizedCrop(16, scale=(2.0, 3.0))  # impossible: falls back to a centre crop
    box = crop.get_transform(image).transforms[0]
    assert (box.x0, box.y0, box.w, box.h) == (5, 0, 80, 60)  # widest allowed ratio 4:3
    aug = T.AugInput(image.copy())
    CenterCrop((20, 30))(aug)
    assert np.array_equal(aug.image, image[20:40, 30:60])
    aug = T.AugInput(image.copy())
    CenterCrop(100)(aug)  # larger than the image: clamped
    assert aug.image.shape == image.shape


@pytest.mark.parametrize("hw, scale", [((60, 90), (0.08, 1.0)), ((97, 41), (0.5, 0.9)),
                                       ((40, 200), (0.9, 1.0))])
def test_random_resized_crop_is_torchvisions_with_an_opencv_resize(hw, scale):
    """The crop boxes of torchvision's RandomResizedCrop for the same torch seed (incl. the
    centre-crop fallback of the thin image), and its bilinear pixels up to OpenCV rounding."""
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import RandomResizedCrop as TorchvisionCrop

    image = np.random.default_rng(1).integers(0, 255, (*hw, 3), dtype=np.uint8)
    ours = RandomResizedCrop((24, 32), scale=scale)
    theirs = TorchvisionCrop((24, 32), scale=scale, interpolation=InterpolationMode.BILINEAR,
                             antialias=False)
    chw = torch.from_numpy(image).permute(2, 0, 1)
    for seed in range(12):
        torch.manual_seed(seed)
        transform = ours.get_transform(image)
        torch.manual_seed(seed)
        i, j, h, w = TorchvisionCrop.get_params(chw, list(scale), [3 / 4, 4 / 3])
        box = transform.transforms[0]
        assert (box.y0, box.x0, box.h, box.w) == (i, j, h, w)
        torch.manual_seed(seed)
        expected = theirs(chw).permute(1, 2, 0).numpy().astype(int)
        out = transform.apply_image(image)
        assert out.shape == (24, 32, 3) and np.abs(out.astype(int) - expected).max() <= 1


@pytest.mark.parametrize("name, classes, images, lr", [
    ("flowers102", 102, 2040, 3.125e-5), ("oxford_pets", 37, 3680, 3.125e-5),
    ("voc07", 20, 5011, 1.5625e-5), ("voc07_multilabel", 20, 5011, 1.5625e-5)])
def test_classification_paper_configs(name, classes, images, lr):
    from mona_scale.engine.config import load_config
    from mona_scale.engine.model_protocol import find_backbone

    from detectron2.config import instantiate

    cfg = load_config(f"configs/classification/{name}_swin_l_mona.py", ["tuning.method=lora"])
    epoch = -(-images // 16)
    assert cfg.train.max_iter == 100 * epoch and cfg.dataloader.train.total_batch_size == 16
    assert (cfg.optimizer.lr, cfg.optimizer.weight_decay, cfg.train.clip_grad) == (lr, 0.05, 5)
    schedule = instantiate(cfg.lr_multiplier)
    assert schedule(0.2) == pytest.approx((1 + math.cos(0.2 * math.pi)) / 2 * 0.99 + 0.01)
    assert schedule(0.1) < schedule(0.19) and schedule(1.0) == pytest.approx(0.01)
    train_augs = cfg.dataloader.train.mapper.augmentations
    assert train_augs[0]._target_ is RandomResizedCrop and train_augs[0].size == 224
    test_augs = cfg.dataloader.test.mapper.augmentations
    assert test_augs[0].short_edge_length == 256 and test_augs[1].size == 224
    with torch.device("meta"):
        model = instantiate(cfg.model)
    assert find_backbone(model).tuning_method == "lora"
    assert model.head.out_features == classes and model.head.in_features == 1536
    assert model.multi_label == (name == "voc07_multilabel") == cfg.dataloader.evaluator.get(
        "multi_label", False)
