"""tools/setup_env.sh --python into an environment that already has a torch: it installs the
other dependencies, detectron2 and mona_scale there and leaves that torch as it was.

The "existing environment" is a scratch venv that sees this project's torch and torchvision
(and the packages they need) through a ``.pth`` file, as a conda or module environment with a
CUDA torch would, together with the scientific stack such an environment usually has
(:data:`PREINSTALLED`). The script installs the other dependencies (timm, which needs torch,
under the torch pin; webdataset, safetensors, ...) from PyPI / the pip cache and builds
detectron2: minutes, hence ``slow``. (Creating ``.venv`` from nothing is what ``make test``
itself does first, with the same script.)
"""
import importlib.metadata as md
import os
import subprocess
import sys

import pytest
from packaging.requirements import Requirement

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SETUP = os.path.join(ROOT, "tools", "setup_env.sh")
# already in the existing environment next to torch (with what they need): the large wheels
# of requirements.txt, so the test spends its time on what the script does, not on unzipping
PREINSTALLED = ["numpy", "scipy", "opencv-python-headless", "matplotlib", "pillow",
                "tensorboard", "wandb", "shapely", "pycocotools", "faster-coco-eval",
                "hydra-core", "fvcore", "black", "ruff", "pytest"]
# the environment's own packaging tools, never linked
TOOLS = {"pip", "setuptools", "wheel"}


def dependency_closure(names):
    """The installed distributions ``names`` need at run time (markers evaluated, requested
    extras followed: torch needs ``cuda-toolkit[cufft,...]``)."""
    seen, todo = {}, [(name, ()) for name in names]
    while todo:
        name, extras = todo.pop()
        key = name.lower().replace("_", "-")
        if (key, extras) in seen or key in TOOLS:
            continue
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            continue
        seen[key, extras] = dist
        for line in dist.requires or []:
            req = Requirement(line)
            if req.marker is None or any(req.marker.evaluate({"extra": e})
                                         for e in ("", *extras)):
                todo.append((req.name, tuple(sorted(req.extras))))
    return list({dist.metadata["Name"]: dist for dist in seen.values()}.values())


def link_packages(dists, into):
    """Symlink the top-level files and folders of ``dists`` (from this interpreter's
    site-packages) into ``into``."""
    os.makedirs(into, exist_ok=True)
    for dist in dists:
        for f in dist.files or []:
            top = f.parts[0]
            if top == ".." or top.endswith(".pth") or top == "__pycache__":
                continue
            source = os.path.join(str(dist.locate_file("")), top)
            target = os.path.join(into, top)
            if os.path.exists(source) and not os.path.lexists(target):
                os.symlink(source, target)


def run_in(python, code):
    return subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_setup_env_into_an_existing_environment_keeps_its_torch(tmp_path):
    env_dir = tmp_path / "env"
    subprocess.run([sys._base_executable, "-m", "venv", str(env_dir)], check=True, timeout=300)
    python = str(env_dir / "bin" / "python")
    site = run_in(python, "import sysconfig; print(sysconfig.get_paths()['purelib'])")
    site = site.stdout.strip()
    link_packages(dependency_closure(["torch", "torchvision", *PREINSTALLED]),
                  str(tmp_path / "torch_env"))
    with open(os.path.join(site, "existing_torch.pth"), "w") as f:
        f.write(str(tmp_path / "torch_env") + "\n")
    before = run_in(python, "import torch, torchvision; print(torch.__version__, "
                            "torchvision.__version__)")
    assert before.returncode == 0, before.stderr
    for missing in ("detectron2", "timm", "webdataset"):  # not there yet
        assert run_in(python, f"import {missing}").returncode != 0, missing

    result = subprocess.run(["bash", SETUP, "--python", python], capture_output=True,
                            text=True, timeout=1800, env=dict(os.environ, PIP_NO_INPUT="1"))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    after = run_in(python, "import torch, torchvision; print(torch.__version__, "
                           "torchvision.__version__)")
    assert after.stdout == before.stdout  # the same torch and torchvision
    where = run_in(python, "import torch, detectron2, mona_scale, deepspeed, timm; "
                           "print(torch.__file__); print(detectron2.__file__); "
                           "print(timm.__file__); print(mona_scale.__file__)")
    assert where.returncode == 0, where.stderr[-3000:]
    # (the last lines: DeepSpeed prints notes first)
    torch_file, d2_file, timm_file, mona_file = where.stdout.splitlines()[-4:]
    assert torch_file.startswith(str(tmp_path / "torch_env"))  # still the linked one
    assert d2_file.startswith(str(env_dir))  # built and installed into the environment
    assert timm_file.startswith(str(env_dir))  # installed (under the torch pin)
    assert mona_file == os.path.join(ROOT, "mona_scale", "__init__.py")
    assert "torch 2" in result.stdout and "unchanged" in result.stdout
