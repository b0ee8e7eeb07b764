"""What the command-line entry points print: known third-party noise silenced, and a closing
summary of where a run's results are.

Entry points (``projects/*.py``, ``mona-shards``, ``python -m mona_scale.export``) call
:func:`quiet_third_party` first; importing the library changes no warning filter.
"""
from __future__ import annotations

import glob
import os
import re
import warnings

__all__ = ["THIRD_PARTY_NOISE", "quiet_third_party", "run_summary", "mona_shards"]

# (message prefix, category) of warnings our dependencies print on every run; none is
# actionable by a user of this library.
THIRD_PARTY_NOISE = (
    ("pkg_resources is deprecated", UserWarning),  # detectron2 / fvcore import it
    ("torch.meshgrid: in an upcoming release", UserWarning),  # detectron2's anchors
    ("TypedStorage is deprecated", UserWarning),  # torch.load of old checkpoints
    ("The given NumPy array is not writable", UserWarning),  # detectron2's mask stacking
    ("`torch.jit.script` is deprecated", FutureWarning),  # detectron2 / fvcore
    ("Importing from timm.models.layers is deprecated", FutureWarning),
    ("`torch.cuda.amp.", FutureWarning),  # DeepSpeed, fvcore
)


def quiet_third_party() -> None:
    """Silence the known third-party warnings (:data:`THIRD_PARTY_NOISE`, deprecation
    warnings raised inside detectron2, fvcore, pycocotools and iopath) and wandb's console
    chatter (``WANDB_SILENT``, unless set) in this process and the processes it starts.

    Our own log lines and any other warning still print.
    """
    for message, category in THIRD_PARTY_NOISE:
        warnings.filterwarnings("ignore", message=re.escape(message), category=category)
    for module in ("detectron2", "fvcore", "pycocotools", "iopath", "webdataset"):
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=rf"{module}\b")
    # child processes (DataLoader workers, torchrun / spawn ranks) inherit the environment
    inherited = [f"ignore:{message}:{category.__name__}" for message, category in
                 THIRD_PARTY_NOISE if ":" not in message]
    current = os.environ.get("PYTHONWARNINGS", "")
    os.environ["PYTHONWARNINGS"] = ",".join(x for x in [current, *inherited] if x)
    os.environ.setdefault("WANDB_SILENT", "true")


def run_summary(output_dir: str, pictures: str | None = None) -> list[str]:
    """The lines that tell where a finished run's results are.

    Args:
        output_dir: the run's ``train.output_dir``.
        pictures: a directory of drawings, if the run made some.

    Returns:
        Lines: metrics, checkpoints, evaluation outputs, pictures, the wandb directory and
        the command that uploads an offline wandb run.
    """
    def exists(name: str) -> str:
        path = os.path.join(output_dir, name)
        return path if os.path.exists(path) else ""

    checkpoints = []
    if exists("last_checkpoint"):
        with open(exists("last_checkpoint")) as f:
            checkpoints.append(os.path.join(output_dir, f.read().strip()) + " (last)")
    if exists("model_final.pth"):
        checkpoints.append(f"{exists('model_final.pth')} (consolidated weights)")
    runs = sorted(glob.glob(os.path.join(output_dir, "wandb", "*run-*")), key=os.path.getmtime)
    offline = runs and os.path.basename(runs[-1]).startswith("offline-")
    lines = [f"results of this run in {output_dir}/:"]
    for label, path, note in (
            ("metrics", exists("metrics.json"), " (one JSON line per log period and per "
                                                "evaluation)"),
            ("checkpoints", ", ".join(checkpoints), ""),
            ("evaluation", exists("inference") and exists("inference") + "/", ""),
            ("log", exists("log.txt"), ""),
            ("pictures", f"{pictures}/" if pictures and os.path.isdir(pictures) else "", ""),
            ("wandb", runs[-1] if runs else "",
             f" (offline; upload: wandb sync {runs[-1]})" if offline else "")):
        if path:
            lines.append(f"  {label:<12} {path}{note}")
    return lines


def mona_shards() -> int:
    """The ``mona-shards`` console script: :func:`quiet_third_party`, then the shard
    writer's command line (:func:`mona_scale.data.shards.cli.main`)."""
    quiet_third_party()
    from .data.shards.cli import main

    return main()
