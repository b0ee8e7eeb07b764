"""The demo pipeline (make demo) end to end with --smoke: every stage and output exists."""
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_quickstart_smoke(tmp_path):
    env = dict(os.environ, MONA_DATASETS=str(tmp_path / "data"), OMP_NUM_THREADS="1")
    out = tmp_path / "demo"
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "projects/quickstart.py"), "--schedule",
         "smoke", "--parallel",
         "--compare-fixed", "--output", str(out)],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (out / "pretrain" / "swin_tiny_microsoft.pth").is_file()
    for run in ("cascade_mona", "cascade_fixed"):
        assert (out / run / "metrics.json").is_file()
        assert (out / run / "model_final.pth").is_file()
    pictures = sorted(os.listdir(out / "cascade_mona" / "predictions"))
    assert pictures == ["000000.png", "000001.png", "000002.png", "000003.png"]
    log = (out / "cascade_mona" / "log.txt").read_text()
    assert "loaded" in log and "microsoft layout" in log  # the exported pretrain loaded
    assert "stage 2  cascade mask r-cnn, mona" in result.stdout
    assert "stage 2  cascade mask r-cnn, fixed" in result.stdout
