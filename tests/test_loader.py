"""The resumable training loader: a stream that is a function of (seed, rank, position)."""
import io
import random

from mona_scale.data.batching import check_batch_fits_world
from mona_scale.data.loader import build_train_loader

import numpy as np
import pytest
import torch

RECORDS = [{"file_name": f"img{i}.jpg", "width": 4 + (i % 3 == 0) * 4, "height": 6}
           for i in range(10)]  # every third image is landscape


def mapper(record: dict) -> dict:
    # randomness from every library, as augmentations use them
    return {"name": record["file_name"], "landscape": record["width"] > record["height"],
            "noise": (random.random(), float(np.random.rand()), float(torch.rand(1)))}


def batches(loader, count: int) -> list[list[dict]]:
    stream = iter(loader)
    return [next(stream) for _ in range(count)]


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("grouping", [False, True])
def test_resumed_stream_continues_exactly(workers, grouping):
    def loader(num_workers):
        return build_train_loader(RECORDS, mapper=mapper, total_batch_size=3,
                                  num_workers=num_workers, seed=7,
                                  aspect_ratio_grouping=grouping)

    full = batches(loader(0), 9)  # spans several epochs of 10 records
    resumed = loader(workers)
    resumed.load_state_dict({"batches": 5, "world_size": 1})
    assert batches(resumed, 4) == full[5:]
    if grouping:
        assert all(len({d["landscape"] for d in batch}) == 1 for batch in full)


@pytest.mark.parametrize("grouping", [False, True])
def test_state_dict_round_trip_continues_the_stream(grouping):
    def loader():
        return build_train_loader(RECORDS, mapper=mapper, total_batch_size=3, seed=7,
                                  aspect_ratio_grouping=grouping)

    full = batches(loader(), 7)
    first = loader()
    assert first.state_dict() == {"batches": 0, "world_size": 1, "seed": 7}
    stream = iter(first)
    for _ in range(4):
        next(stream)
    state = first.state_dict()
    assert state == {"batches": 4, "world_size": 1, "seed": 7}  # batches handed out so far
    torch.save(state, buffer := io.BytesIO())  # saved in a checkpoint's rank file
    buffer.seek(0)
    resumed = loader()
    resumed.load_state_dict(torch.load(buffer, weights_only=True))
    assert batches(resumed, 3) == full[4:]
    assert resumed.state_dict()["batches"] == 7
    with pytest.raises(KeyError, match=r"ResumableTrainLoader state lacks \['world_size'\]"):
        loader().load_state_dict({"batches": 1})


def test_state_from_another_world_size_continues_with_a_warning(caplog):
    resumed = build_train_loader(RECORDS, mapper=mapper, total_batch_size=3, seed=7)
    with caplog.at_level("WARNING"):
        resumed.load_state_dict({"batches": 2, "world_size": 4, "seed": 7})
    assert "saved by 4 ranks and resumes with 1" in caplog.text
    assert resumed.state_dict()["batches"] == 2


def test_stream_does_not_touch_the_global_rng():
    state = torch.get_rng_state()
    batches(build_train_loader(RECORDS, mapper=mapper, total_batch_size=2, seed=1), 3)
    assert torch.equal(torch.get_rng_state(), state)


def test_seed_changes_order_and_epochs_cover_every_record():
    one = batches(build_train_loader(RECORDS, mapper=mapper, total_batch_size=5, seed=1,
                                     aspect_ratio_grouping=False), 2)
    two = batches(build_train_loader(RECORDS, mapper=mapper, total_batch_size=5, seed=2,
                                     aspect_ratio_grouping=False), 2)
    assert sorted(d["name"] for b in one for d in b) == sorted(r["file_name"] for r in RECORDS)
    assert [d["name"] for d in one[0]] != [d["name"] for d in two[0]]


def test_bad_arguments_name_the_problem():
    with pytest.raises(ValueError, match="dataset is empty"):
        build_train_loader([], mapper=mapper, total_batch_size=2)
    with pytest.raises(ValueError, match="total_batch_size=0"):
        build_train_loader(RECORDS, mapper=mapper, total_batch_size=0)
    loader = build_train_loader([{"file_name": "x.jpg"}], mapper=mapper, total_batch_size=1)
    with pytest.raises(KeyError, match="aspect_ratio_grouping needs 'width'.*x.jpg"):
        batches(loader, 1)


@pytest.mark.parametrize("batch, world, per_node, flags, bigger", [
    (2, 16, 8, "--nodes=1 --ntasks-per-node=2 --gpus-per-node=2", 16),  # VOC's batch on 2x8
    (12, 16, 8, "--nodes=1 --ntasks-per-node=6 --gpus-per-node=6", 16),
    (24, 32, 8, "--nodes=3 --ntasks-per-node=8 --gpus-per-node=8", 32),
    (3, 2, 1, "--nodes=1 --ntasks-per-node=1 --gpus-per-node=1", 4),
])
def test_batch_world_mismatch_names_the_launch_that_fits(batch, world, per_node, flags, bigger):
    with pytest.raises(ValueError) as error:
        check_batch_fits_world(batch, world, per_node)
    message = str(error.value)
    assert f"total_batch_size={batch} cannot be split over {world} ranks" in message
    assert f"sbatch {flags}" in message
    assert f"dataloader.train.total_batch_size={bigger}" in message
    assert check_batch_fits_world(bigger, world, per_node) == bigger // world


def test_train_loader_refuses_a_batch_it_cannot_split():
    with pytest.raises(ValueError, match="total_batch_size=0 cannot be split over 1 ranks"):
        build_train_loader(RECORDS, mapper=mapper, total_batch_size=0)
