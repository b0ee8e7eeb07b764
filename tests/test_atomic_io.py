"""One atomic-write helper: complete file or the previous one, never a partial file."""
import os
import subprocess
import sys

from mona_scale.atomic_io import atomic_path, atomic_write, remove_stale_temps

import pytest


def test_write_publishes_complete_file(tmp_path):
    target = tmp_path / "a.txt"
    with atomic_write(target) as f:
        f.write("hello")
        assert not target.exists()  # nothing under the final name before the block ends
    assert target.read_text() == "hello"
    assert os.listdir(tmp_path) == ["a.txt"]


def test_failed_write_keeps_previous_file(tmp_path):
    target = tmp_path / "a.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_write(target, "wb") as f:
        f.write(b"new, half")
        raise RuntimeError("disk full")
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["a.bin"]


def test_path_form_for_writers_taking_a_name(tmp_path):
    import torch
    target = tmp_path / "t.pt"
    with atomic_path(target) as tmp:
        torch.save({"x": torch.ones(2)}, tmp)
    assert torch.equal(torch.load(target, weights_only=True)["x"], torch.ones(2))


def test_killed_writer_leaves_previous_file_and_cleanup_removes_temp(tmp_path):
    target = tmp_path / "a.txt"
    target.write_text("previous")
    code = ("import os, sys; from mona_scale.atomic_io import atomic_write\n"
            f"with atomic_write({str(target)!r}) as f:\n"
            "    f.write('partial'); f.flush(); os._exit(9)\n")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 9
    assert target.read_text() == "previous"
    leftovers = [p for p in os.listdir(tmp_path) if p != "a.txt"]
    assert len(leftovers) == 1 and ".tmp." in leftovers[0]
    assert [os.path.basename(p) for p in remove_stale_temps(tmp_path)] == leftovers
    assert os.listdir(tmp_path) == ["a.txt"]


def test_rejects_append_mode(tmp_path):
    with pytest.raises(ValueError, match="mode"), atomic_write(tmp_path / "x", "a"):
        pass
