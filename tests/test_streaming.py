"""Training and evaluation from webdataset shards through projects/train_net.py (detection
and classification quickstarts; evaluation equal to the file-based one; a mid-stream
resume), and exactly-once evaluation over two real torchrun ranks x two workers."""
import json
import math
import os
import subprocess
import sys
import textwrap

from mona_scale.engine.config import load_config
from mona_scale.engine.defaults import build_model, do_test, load_init_checkpoint
from mona_scale.launch import find_free_port

import pytest
import torch
from helpers.train_net import ROOT, copypaste, read_metrics, train_net

DETECTION = os.path.join(ROOT, "configs/quickstart/shapes_cascade_mona_stream.py")
DETECTION_FILES = os.path.join(ROOT, "configs/quickstart/shapes_cascade_mona.py")
SEMSEG = os.path.join(ROOT, "configs/quickstart/shapes_upernet_mona_stream.py")
SEMSEG_FILES = os.path.join(ROOT, "configs/quickstart/shapes_upernet_mona.py")
CLASSIFICATION = os.path.join(ROOT, "configs/quickstart/shapes_cls_mona_stream.py")
COMMON = ["dataloader.train.total_batch_size=2", "dataloader.train.num_workers=0",
          "dataloader.test.num_workers=0", "train.log_period=1", "train.max_iter=3",
          "train.checkpointer.period=100", "train.wandb.enabled=False", "optimizer.lr=1e-3"]
SHARDS = ["dataloader.train.dataset.manifests.num_images=8",
          "dataloader.train.dataset.manifests.shard_size=4", "dataloader.train.shuffle_buffer=4",
          "dataloader.test.dataset.manifests.num_images=4",
          "dataloader.test.dataset.manifests.shard_size=2"]
DETECTION_SIZES = ["dataloader.train.mapper.augmentations.0.short_edge_length=[64]",
                   "dataloader.test.mapper.augmentations.0.short_edge_length=64",
                   *(f"model.roi_heads.box_predictors.{i}.test_score_thresh=0.0"
                     for i in range(3))]  # an untrained detector still predicts boxes


def run(tmp_path, config, *args):
    """train_net with another config (argparse keeps the last --config-file)."""
    return train_net(tmp_path, "--config-file", config, *args)


def evaluate_files(monkeypatch, tmp_path, config, overrides, weights):
    """Evaluate ``weights`` on the synthetic files (in this process); the results flattened
    as in metrics.json."""
    monkeypatch.setenv("MONA_DATASETS", str(tmp_path / "data"))
    cfg = load_config(config, [*overrides, f"train.output_dir={tmp_path / 'files'}"])
    model = build_model(cfg)
    load_init_checkpoint(model, str(weights))
    # one thread, as train_net's run (OMP_NUM_THREADS=1): CPU kernels may block their sums
    # by thread count, which moves scores in the 7th digit on some processors
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        results = do_test(cfg, model)
    finally:
        torch.set_num_threads(threads)
    return {f"{task}/{k}": v for task, metrics in results.items() for k, v in metrics.items()}


def same_metrics(streamed: dict, files: dict) -> bool:
    return all(k in streamed and (streamed[k] == v or math.isnan(v) and math.isnan(streamed[k]))
               for k, v in files.items())


def predictions(out):
    path = os.path.join(out, "inference", "instances_predictions.pth")
    return sorted(torch.load(path, weights_only=False), key=lambda p: p["image_id"])


@pytest.mark.slow
def test_detection_trains_from_shards_and_evaluates_like_files(tmp_path, monkeypatch):
    out = tmp_path / "stream"
    run(tmp_path, DETECTION, *COMMON, *SHARDS, *DETECTION_SIZES, f"train.output_dir={out}")
    records = read_metrics(out)
    steps = [r for r in records if "total_loss" in r]
    assert [r["iteration"] for r in steps] == [0, 1, 2]
    assert steps[-1]["data/samples_seen"] >= 6 and steps[-1]["data/corrupt_samples"] == 0
    final = records[-1]
    assert final["data_test/samples_seen"] == 4 and final["data_test/corrupt_samples"] == 0
    assert (tmp_path / "data" / "shards" / "shapes_instances_train-8-4" / "manifest.json").is_file()
    # the same weights evaluated on the synthetic files: identical predictions and metrics
    files = evaluate_files(monkeypatch, tmp_path, DETECTION_FILES,
                           [*COMMON, *DETECTION_SIZES, "dataloader.test.dataset.num_images=4"],
                           out / "model_final.pth")
    assert "bbox/AP" in files and "segm/AP" in files and same_metrics(final, files)
    streamed, reference = predictions(out), predictions(tmp_path / "files")
    assert [p["image_id"] for p in streamed] == [1, 2, 3, 4]
    assert all(p["instances"] for p in streamed) and streamed == reference


@pytest.mark.slow
def test_semantic_segmentation_trains_from_shards_and_evaluates_like_files(tmp_path,
                                                                          monkeypatch):
    """SemSegEvaluator reads the ground truth masks from the shards (published in memory)."""
    out = tmp_path / "stream"
    tiny = [*COMMON, "dataloader.train.mapper.augmentations.1.crop_size=[64,64]",
            "model.backbone.drop_path_rate=0.0"]
    run(tmp_path, SEMSEG, *tiny, *SHARDS, "dataloader.test.dataset.manifests.num_images=3",
        f"train.output_dir={out}")
    records = read_metrics(out)
    assert [r["iteration"] for r in records if "total_loss" in r] == [0, 1, 2]
    assert records[-1]["data_test/samples_seen"] == 3
    files = evaluate_files(monkeypatch, tmp_path, SEMSEG_FILES,
                           [*tiny, "dataloader.test.dataset.num_images=3"],
                           out / "model_final.pth")
    assert "sem_seg/mIoU" in files and same_metrics(records[-1], files)


def losses(out):
    return {r["iteration"]: r["total_loss"] for r in read_metrics(out) if "total_loss" in r}


@pytest.mark.slow
def test_classification_trains_from_shards_and_resumes_mid_stream(tmp_path):
    """A run stopped after 2 iterations and resumed matches an uninterrupted one: the
    stream continues (the checkpoint holds the loader's state_dict, restored by load_state_dict)."""
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    args = [*COMMON, *SHARDS, "dataloader.test.dataset.manifests.num_images=6",
            "train.max_iter=4", "model.backbone.drop_path_rate=0.0"]
    run(tmp_path, CLASSIFICATION, *args, f"train.output_dir={whole}")
    records = read_metrics(whole)
    assert "classification/top1" in records[-1]
    assert records[-1]["data_test/samples_seen"] == 6
    run(tmp_path, CLASSIFICATION, *args, "train.stop_at_iter=2", f"train.output_dir={parts}")
    assert sorted(losses(parts)) == [0, 1]
    run(tmp_path, CLASSIFICATION, "--resume", *args, f"train.output_dir={parts}")
    assert losses(parts) == losses(whole)
    assert copypaste((parts / "log.txt").read_text(), "classification") == \
        copypaste((whole / "log.txt").read_text(), "classification")


EVAL_COVERAGE = textwrap.dedent("""
    import json, sys
    import torch.distributed as dist
    from detectron2.config import instantiate
    from detectron2.utils import comm
    from mona_scale.engine.config import load_config
    from mona_scale.launch import shutdown_distributed
    dist.init_process_group("gloo")
    cfg = load_config(sys.argv[1], sys.argv[3:])
    loader = instantiate(cfg.dataloader.test)
    ids = [batch[0]["image_id"] for batch in loader]
    everything = comm.all_gather({"ids": ids, "len": len(loader), "stats": loader.stats()})
    if comm.is_main_process():
        with open(sys.argv[2], "w") as f:
            json.dump(everything, f)
    shutdown_distributed()
""")


@pytest.mark.slow
def test_two_torchrun_ranks_with_two_workers_evaluate_every_sample_once(tmp_path):
    script = tmp_path / "coverage.py"
    script.write_text(EVAL_COVERAGE)
    result = tmp_path / "ids.json"
    env = dict(os.environ, MONA_DATASETS=str(tmp_path / "data"), OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
                           f"--master_port={find_free_port()}", str(script), DETECTION,
                           str(result), "dataloader.test.num_workers=2",
                           "dataloader.test.dataset.manifests.num_images=10",
                           "dataloader.test.dataset.manifests.shard_size=2"],
                          env=env, cwd=tmp_path, timeout=300, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    ranks = json.loads(result.read_text())
    ids = [i for rank in ranks for i in rank["ids"]]
    assert sorted(ids) == list(range(1, 11))  # 5 shards over 4 streams: each sample once
    assert [rank["len"] for rank in ranks] == [len(rank["ids"]) for rank in ranks] == [6, 4]
    assert all(rank["stats"]["data_test/corrupt_samples"] == 0 for rank in ranks)
