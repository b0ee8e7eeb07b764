"""Data parallelism on 2 gloo ranks (one torchrun launch, tests/helpers/data_parallel_worker.py):
a DDP step equals one process's step on the doubled batch, the file loader's ranks see
disjoint images in an epoch, and SyncBN leaves the same statistics on both ranks."""
import json

from mona_scale.engine.config import load_config
from mona_scale.engine.defaults import build_model

import pytest
import torch
from detectron2.utils.events import EventStorage
from helpers.data_parallel_worker import CLS_DDP, sgd
from helpers.train_net import CLS_CONFIG, run_two_rank_worker

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    """The worker's files, after one 2-rank launch."""
    out = tmp_path_factory.mktemp("data_parallel")
    run_two_rank_worker("data_parallel_worker.py", out, timeout=300)
    return out


def test_two_rank_ddp_step_equals_one_process_on_the_doubled_batch(ranks, monkeypatch):
    saved = [torch.load(ranks / f"ddp_rank{r}.pt", weights_only=False) for r in (0, 1)]
    files = [[s["file_name"] for s in rank["batch"]] for rank in saved]
    assert len(files[0]) == len(files[1]) == 2 and not set(files[0]) & set(files[1])
    # one process, no launcher: the same model and both ranks' batches as one batch of 4
    monkeypatch.setenv("MONA_DATASETS", str(ranks / "data"))
    cfg = load_config(CLS_CONFIG, CLS_DDP + [f"train.output_dir={ranks / 'single'}"])
    model = build_model(cfg).train()
    optimizer = sgd(model)
    before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    with EventStorage(0):
        sum(model(saved[0]["batch"] + saved[1]["batch"]).values()).backward()
    optimizer.step()
    after = {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}
    assert sorted(after) == sorted(saved[0]["after"]) and len(after) > 10
    moved = 0
    for name, expected in after.items():
        assert torch.equal(saved[0]["before"][name], before[name]), name  # same start
        for rank in saved:  # DDP keeps the ranks' weights identical
            torch.testing.assert_close(rank["after"][name], saved[0]["after"][name],
                                       rtol=0, atol=0, msg=name)
        update, ddp_update = expected - before[name], saved[0]["after"][name] - before[name]
        scale = update.abs().max().item()
        moved += scale > 0
        assert (ddp_update - update).abs().max().item() <= 1e-4 * scale + 1e-7, (
            f"{name}: 2-rank update differs from the single-process one by "
            f"{(ddp_update - update).abs().max().item():.3g} (largest entry {scale:.3g})")
    assert moved > 0.9 * len(after)  # the step moved nearly every trainable tensor


def test_file_loader_ranks_see_disjoint_images_in_an_epoch(ranks):
    seen = [json.loads((ranks / f"files_rank{r}.json").read_text()) for r in (0, 1)]
    dataset = seen[0]["dataset"]
    assert len(dataset) == len(set(dataset)) == 12
    for rank in seen:
        assert len(rank["names"]) == 6 and len(set(rank["names"])) == 6, rank["names"]
    assert not set(seen[0]["names"]) & set(seen[1]["names"])
    assert sorted(seen[0]["names"] + seen[1]["names"]) == sorted(dataset)


def test_syncbn_statistics_are_equal_on_both_ranks_after_a_step(ranks):
    saved = [torch.load(ranks / f"syncbn_rank{r}.pt", weights_only=False) for r in (0, 1)]
    assert not set(saved[0]["files"]) & set(saved[1]["files"])  # the ranks' batches differ
    stats = [rank["stats"] for rank in saved]
    assert sorted(stats[0]) == sorted(stats[1]) and len(stats[0]) >= 4
    for name, bn in stats[0].items():
        other = stats[1][name]
        # moved from the initial (0, 1) by the first batch's statistics
        assert bn["mean"].abs().max() > 0 and (bn["var"] - 1).abs().max() > 0, name
        torch.testing.assert_close(bn["mean"], other["mean"], rtol=1e-6, atol=1e-7, msg=name)
        torch.testing.assert_close(bn["var"], other["var"], rtol=1e-6, atol=1e-7, msg=name)
        assert bn["type"] == "NaiveSyncBatchNorm", (name, bn["type"])  # SyncBN on CPU
