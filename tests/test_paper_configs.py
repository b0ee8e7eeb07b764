"""Every paper config trains and evaluates, through projects/train_net.py, on tiny data sets
laid out exactly as their owners distribute them (tests/helpers/real_layouts.py, itself checked
against pycocotools and torchvision in test_real_layouts.py).

Full model sizes (Swin-B / Swin-L with the paper's heads), 2 iterations at batch 2 on CPU;
only the image sizes (and the detector's number of sampled regions) are shrunk. All configs
run one after another in one process (tests/scale_worker.py: each job is what
``projects/train_net.py --config-file <config> <overrides>`` runs), so the process start and
the imports are paid once. ``pytest -m "not real_data"`` skips this tier locally.
"""
import json
import os
import subprocess
import sys

import pytest
from helpers.real_layouts import write_real_datasets
from helpers.train_net import ROOT, read_metrics

pytestmark = pytest.mark.real_data

COMMON = ["train.device=cpu", "train.max_iter=2", "train.eval_period=0", "train.log_period=1",
          "train.checkpointer.period=100", "train.wandb.enabled=False",
          "dataloader.train.total_batch_size=2", "dataloader.train.num_workers=0",
          "dataloader.test.num_workers=0"]
COCO_AUG = "dataloader.train.mapper.augmentations.1"
TEST_RESIZE = "dataloader.test.mapper.augmentations.0"
DETECTION_TEST = [f"{TEST_RESIZE}.short_edge_length=96", f"{TEST_RESIZE}.max_size=160"]
CLASSIFICATION = ["dataloader.train.mapper.augmentations.0.size=112",
                  f"{TEST_RESIZE}.short_edge_length=128",
                  "dataloader.test.mapper.augmentations.1.size=112"]
# config -> (its size overrides, a metrics.json key the evaluation must write)
PAPER_CONFIGS = {
    "coco/cascade_mask_rcnn_swin_b_mona_3x.py": (
        # always the DETR-style branch: resize -> crop polygons (shapely) -> resize
        [f"{COCO_AUG}.probs=[0,1]", f"{COCO_AUG}.choices.1.0.short_edge_length=[96]",
         f"{COCO_AUG}.choices.1.0.max_size=160", f"{COCO_AUG}.choices.1.1.crop_size=[48,80]",
         f"{COCO_AUG}.choices.1.2.short_edge_length=[96]",
         f"{COCO_AUG}.choices.1.2.max_size=160", *DETECTION_TEST,
         # keep every detection of the untrained model, so masks are evaluated too
         *[f"model.roi_heads.box_predictors.{i}.test_score_thresh=0.0" for i in range(3)],
         # 64 sampled regions per image (not 512), 100 test proposals (not 1000): each of
         # the 3 stages runs its 4 convolutions of 256 channels on every region
         "model.roi_heads.batch_size_per_image=64",
         "model.proposal_generator.post_nms_topk=[2000,100]"],
        "segm/AP"),
    "voc/retinanet_swin_l_mona_1x.py": (
        ["dataloader.train.mapper.augmentations.0.short_edge_length=[96,96]",
         "dataloader.train.mapper.augmentations.0.max_size=160", *DETECTION_TEST,
         "model.test_score_thresh=0.0"],
        "bbox/AP50"),
    "ade20k/upernet_swin_l_mona_160k.py": (
        ["dataloader.train.mapper.augmentations.0.scale=[256,64]",
         "dataloader.train.mapper.augmentations.1.crop_size=[64,64]",
         f"{TEST_RESIZE}.short_edge_length=64", f"{TEST_RESIZE}.max_size=256"],
        "sem_seg/mIoU"),
    "classification/flowers102_swin_l_mona.py": (CLASSIFICATION, "classification/top1"),
    "classification/oxford_pets_swin_l_mona.py": (CLASSIFICATION, "classification/top1"),
    "classification/voc07_swin_l_mona.py": (CLASSIFICATION, "classification/top1"),
    "classification/voc07_multilabel_swin_l_mona.py": (CLASSIFICATION, "classification/mAP"),
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Every paper config trained and evaluated (one process), by config."""
    tmp = tmp_path_factory.mktemp("paper_configs")
    write_real_datasets(tmp / "datasets")
    outputs = {config: tmp / config.replace("/", "_").removesuffix(".py")
               for config in PAPER_CONFIGS}
    jobs = [{"config": os.path.join(ROOT, "configs", config),
             "overrides": [*COMMON, *PAPER_CONFIGS[config][0], f"train.output_dir={out}"]}
            for config, out in outputs.items()]
    (tmp / "jobs.json").write_text(json.dumps(jobs))
    env = dict(os.environ, DETECTRON2_DATASETS=str(tmp / "datasets"), OMP_NUM_THREADS="2")
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "tests/scale_worker.py"), str(tmp / "jobs.json")],
        env=env, cwd=tmp, capture_output=True, text=True, timeout=1500)
    assert result.returncode == 0, result.stderr[-5000:]
    (tmp / "stderr.txt").write_text(result.stderr)  # with each job's seconds
    return outputs


@pytest.mark.parametrize("config", sorted(PAPER_CONFIGS))
def test_paper_config_trains_and_evaluates(config, runs):
    out, metric = runs[config], PAPER_CONFIGS[config][1]
    records = read_metrics(out)
    losses = [r for r in records if "total_loss" in r]
    assert [r["iteration"] for r in losses] == [0, 1]
    evaluated = [r for r in records if metric in r]
    assert evaluated, f"no {metric} in metrics.json: {records[-1]}"
    assert 0.0 <= evaluated[-1][metric] <= 100.0, evaluated[-1]
    assert (out / "model_final.pth").is_file()
