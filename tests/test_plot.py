import json

from mona_scale.plot import main, read_metrics

import pytest
from PIL import Image


def write_run(path, losses, ap):
    path.mkdir()
    with open(path / "metrics.json", "w") as f:
        for i, loss in enumerate(losses):
            f.write(json.dumps({"iteration": i, "total_loss": loss}) + "\n")
        f.write(json.dumps({"iteration": len(losses) - 1, "bbox/AP": ap}) + "\n")


def test_plot_two_runs(tmp_path):
    write_run(tmp_path / "mona", [3.0 - 0.01 * i for i in range(100)], 43.0)
    write_run(tmp_path / "fixed", [3.0 - 0.005 * i for i in range(100)], 29.0)
    out = tmp_path / "curves.png"
    assert main([str(tmp_path / "mona"), str(tmp_path / "fixed"), "--output", str(out)]) == 0
    image = Image.open(out)
    assert image.size == (1100, 400)
    pixels = image.convert("RGB").getcolors(maxcolors=1 << 20)
    assert len(pixels) > 50  # curves, not a blank canvas


def test_missing_metrics_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing/metrics.json"):
        read_metrics(str(tmp_path / "nothing"))
