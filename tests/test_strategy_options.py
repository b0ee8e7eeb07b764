"""Every strategy option once in a 2-rank run (tests/helpers/strategy_options_worker.py, one
torchrun launch): ``train.fsdp.per_block=False`` / ``True``,
``train.fsdp.reshard_after_forward=False``, ``train.fsdp.param_dtype=bf16`` (with bf16
autocast, which the replicated frozen backbone needs) and
``train.deepspeed.offload_optimizer=True``.
Each job trains to the end as train_net would, the option visibly takes effect, and options
that only move memory or communication leave the losses of the default run unchanged."""
import json
import math

import pytest
from helpers.strategy_options_worker import ITERS, JOBS
from helpers.train_net import read_metrics, run_two_rank_worker

pytestmark = pytest.mark.slow
# the tiny classifier: a Swin with 2 + 2 + 2 + 2 blocks, and one trainable head (Linear)
BLOCKS, HEADS = 8, 1


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("strategy_options")
    run_two_rank_worker("strategy_options_worker.py", out, timeout=600)
    return out


def losses(run_dir) -> list[float]:
    rows = [r for r in read_metrics(run_dir) if "total_loss" in r]
    assert [r["iteration"] for r in rows] == list(range(ITERS)), run_dir
    return [r["total_loss"] for r in rows]


def inspected(runs, name: str) -> dict:
    return json.loads((runs / name / "inspect.json").read_text())


@pytest.mark.parametrize("name", sorted(JOBS))
def test_every_option_trains_to_the_end(runs, name):
    assert all(math.isfinite(x) for x in losses(runs / name))
    assert (runs / name / "last_checkpoint").read_text() == f"model_{ITERS - 1:07d}"
    assert (runs / name / "model_final.pth").is_file()


@pytest.mark.parametrize("name", ["fsdp_one_unit", "fsdp_per_block", "fsdp_no_reshard"])
def test_fsdp_layout_options_keep_the_losses(runs, name):
    reference, got = losses(runs / "fsdp"), losses(runs / name)
    for a, b in zip(got, reference, strict=True):
        assert abs(a - b) <= 1e-5 * abs(b), (name, got, reference)


def test_per_block_sets_the_fsdp_units(runs):
    assert inspected(runs, "fsdp_one_unit")["fsdp_units"] == 1  # the root only
    assert inspected(runs, "fsdp_per_block")["fsdp_units"] == BLOCKS + HEADS + 1


def test_reshard_after_forward_false_keeps_parameters_gathered_until_backward(runs):
    default, kept = inspected(runs, "fsdp"), inspected(runs, "fsdp_no_reshard")
    assert default["sharded_after_forward"] > 0  # resharded after forward
    assert kept["sharded_after_forward"] == 0 and kept["trainable"] == default["trainable"]


def test_param_dtype_bf16_computes_in_bf16(runs):
    assert inspected(runs, "fsdp")["head_weight_dtype"] == "float32"
    assert inspected(runs, "fsdp_bf16")["head_weight_dtype"] == "bfloat16"
    reference, got = losses(runs / "fsdp"), losses(runs / "fsdp_bf16")
    assert got != reference  # really another precision
    assert abs(got[0] - reference[0]) <= 3e-2 * reference[0]  # same weights and batch


def test_offload_optimizer_steps_on_the_cpu_with_the_same_losses(runs):
    assert inspected(runs, "zero2")["zero_cpu_offload"] is False
    assert inspected(runs, "zero2_offload")["zero_cpu_offload"] is True
    reference, got = losses(runs / "zero2"), losses(runs / "zero2_offload")
    for a, b in zip(got, reference, strict=True):
        assert abs(a - b) <= 1e-6 * abs(b), (got, reference)
