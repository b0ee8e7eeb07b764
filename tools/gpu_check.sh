#!/usr/bin/env bash
# The one-GPU check: the tests marked `gpu` and the GPU benchmark, on a machine with one CUDA
# GPU, a python3 that already has torch and torchvision (2.11 or newer) and NO network.
#
#   tools/gpu_check.sh --prepare   # here, with registry access (needs `make env` first):
#                                  # builds the offline bundle .cache/gpu_bundle/ (< 64 MiB)
#   tools/gpu_check.sh             # there (or `make gpu-check`): within 8 minutes
#
# A session whose task is lent a GPU runs, after --prepare, this one device-tool call:
#   run(command="bash tools/gpu_check.sh", carry=[".cache/gpu_bundle"], timeout_s=600)
# and reads gpu_check.md (the summary and the benchmark table) among the returned files.
#
# What it does:
#   1. install: a venv (.cache/gpu_venv, --system-site-packages: the machine's torch) with
#      the bundle's wheels (pip --no-index --no-deps) and mona_scale editable; skipped when
#      the python already imports every dependency (this repository's .venv).
#   2. gpu tests: pytest -m gpu tests/test_gpu.py (CUDA bf16 train_net steps under ddp,
#      fsdp, deepspeed ZeRO-2 at world size 1 with evaluation; fused vs reference Mona).
#   3. benchmark: benchmarks/bench_gpu.py (Swin-B Cascade Mask R-CNN, 1024x1024, batch 2,
#      bf16: full / fixed / mona / mona+ckpt, and the Mona op vs a bandwidth floor).
#   4. report: gpu_check.json and gpu_check.md (+ bench_gpu.json/.md, pytest_gpu.xml,
#      gpu_check.log) in $OUT if set, else output/gpu_check.
# Without a GPU the same steps run where they need none: the install (if needed), the gpu
# tests (collected, each skipped), the benchmark as --cpu-smoke; the report says what was
# skipped and why. Exit status: 0 when every step that ran passed.
#
# Environment: GPU_CHECK_PYTHON (base python; default python3, or .venv's python when python3
# has no torch), GPU_CHECK_OUT (output dir),
# GPU_CHECK_INSTALL=1 (install the bundle even if the python has every dependency),
# GPU_CHECK_BUNDLE (bundle dir), GPU_CHECK_TARGET_PYTHON (--prepare's python, default 3.12),
# GPU_CHECK_BENCH_ARGS (more bench_gpu.py arguments, e.g. "--variants fixed mona"),
# GPU_CHECK_{INSTALL,TESTS,BENCH}_TIMEOUT (seconds; defaults 120, 210, 150: 8 minutes).
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUNDLE="${GPU_CHECK_BUNDLE:-$ROOT/.cache/gpu_bundle}"
VENV="$ROOT/.cache/gpu_venv"
LIMIT_BYTES=$((64 * 1024 * 1024))
# the GPU machine's python (device README: Python 3.12.3)
TARGET_PYTHON_VERSION="${GPU_CHECK_TARGET_PYTHON:-3.12}"
PLATFORMS=(manylinux_2_39_x86_64 manylinux_2_35_x86_64 manylinux_2_34_x86_64
           manylinux_2_31_x86_64 manylinux_2_28_x86_64 manylinux_2_27_x86_64
           manylinux_2_24_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64)
# What the gpu tests and the benchmark import beyond the GPU machine's own packages
# (torch, torchvision, numpy, pillow, matplotlib, pyyaml, tqdm, tabulate, pytest, ...).
TOP_LEVEL=(fvcore iopath omegaconf hydra-core pycocotools faster-coco-eval yacs termcolor
           deepspeed)
IMPORTS="torch, torchvision, detectron2, deepspeed, fvcore, iopath, omegaconf, hydra, \
pycocotools, faster_coco_eval, pytest"

log() { printf '[gpu_check] %s\n' "$*"; }
die() { printf '[gpu_check] ERROR: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------------------------------
prepare() {
  local py="$ROOT/.venv/bin/python"
  [ -x "$py" ] || die "--prepare builds wheels with the project environment: run 'make env' first"
  local start=$SECONDS
  rm -rf "$BUNDLE" && mkdir -p "$BUNDLE/wheels" "$BUNDLE/work" || die "cannot create $BUNDLE"
  local pip=("$py" -m pip --disable-pip-version-check -q)
  local platform_flags=() p
  for p in "${PLATFORMS[@]}"; do platform_flags+=(--platform "$p"); done

  log "resolving the requirements of: ${TOP_LEVEL[*]} (versions of $ROOT/.venv)"
  local specs
  specs="$("$py" - "${TOP_LEVEL[@]}" <<'PYEOF'
# The closure of the top-level packages' requirements (markers evaluated for CPython 3.12 on
# Linux, extras ignored), pinned to the versions installed here, minus what the GPU
# machine's image already holds (the device README's package list).
import importlib.metadata as md
import re
import sys

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ON_GPU_MACHINE = set(canonicalize_name(n) for n in """
absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs
botorch build certifi charset-normalizer chex click cloudpickle cmake colorama contourpy
coverage cuda-bindings cuda-core cuda-pathfinder cuda-toolkit cupy-cuda13x cycler cython
diffrax e3nn einops equinox etils execnet filelock flatbuffers flax fonttools formulaic
frozenlist fsspec gpytorch grpcio h11 h5py hf-xet httpcore httpx huggingface-hub humanize
hypothesis idna imageio iniconfig interface-meta jax jaxlib jaxtyping jinja2 joblib
kiwisolver lazy-loader lightning lightning-utilities linear-operator lineax llvmlite lxml
markdown markdown-it-py markupsafe matplotlib mdurl meson ml-dtypes mpi4py mpmath msgpack
multidict multipledispatch mypy-extensions nanobind narwhals networkx ninja numba numba-cuda
numpy numpyro nvidia-ml-py onnx onnxruntime opencv-python-headless optax opt-einsum packaging
pandas pathspec patsy peft pillow pip pluggy portalocker prometheus-client propcache
protobuf psutil pyarrow pybind11 py-cpuinfo pygments pyparsing pyproject-hooks python-dateutil
pytest pyyaml regex requests rich safetensors scikit-image scikit-learn scipy seaborn
sentencepiece setuptools shellingham simplejson six sortedcontainers statsmodels sympy tabulate
tensorboard threadpoolctl tifffile timm tokenizers toolz torch torchaudio torchvision tqdm
transformers triton typer urllib3 werkzeug wheel wrapt xarray xxhash yarl zipp
""".split())
env = {"python_version": "3.12", "python_full_version": "3.12.3", "sys_platform": "linux",
       "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix",
       "implementation_name": "cpython", "platform_python_implementation": "CPython",
       "extra": ""}
todo, pins = list(sys.argv[1:]), {}
while todo:
    name = canonicalize_name(todo.pop())
    if name in pins or name in ON_GPU_MACHINE:
        continue
    try:
        dist = md.distribution(name)
    except md.PackageNotFoundError:
        sys.exit(f"{name} is not installed in the project environment: run 'make env'")
    pins[name] = dist.version
    for line in dist.requires or []:
        req = Requirement(line)
        if req.marker is None or req.marker.evaluate(env):
            todo.append(req.name)
print("\n".join(f"{n}=={v}" for n, v in sorted(pins.items())))
PYEOF
)" || die "could not resolve the requirements"
  local spec
  for spec in $specs; do
    if "${pip[@]}" download --no-deps --only-binary=:all: --python-version "$TARGET_PYTHON_VERSION" \
        --implementation cp "${platform_flags[@]}" -d "$BUNDLE/wheels" "$spec" >/dev/null 2>&1; then
      log "  $spec: wheel for cp${TARGET_PYTHON_VERSION/./} linux x86_64"
    else  # source only (fvcore, antlr4, deepspeed): a pure-Python wheel built here
      DS_BUILD_OPS=0 "${pip[@]}" wheel --no-deps --no-build-isolation -w "$BUNDLE/wheels" \
        "$spec" >"$BUNDLE/work/build.log" 2>&1 \
        || { tail -n 20 "$BUNDLE/work/build.log" >&2; die "no wheel for $spec"; }
      log "  $spec: built from source"
    fi
  done

  log "detectron2 v0.6: PyPI's pb1-detectron2 source (as tools/install_detectron2.sh gets it)"
  TMPDIR="$BUNDLE/work" "${pip[@]}" download --no-clean --no-deps --no-build-isolation \
    -d "$BUNDLE/work/dist" "pb1-detectron2==0.6" >"$BUNDLE/work/d2.log" 2>&1 || true
  local src
  src="$(find "$BUNDLE/work" -maxdepth 3 -type f -name setup.py -path '*pb1-detectron2*' \
         -printf '%h\n' | head -n1)"
  [ -n "$src" ] && [ -d "$src/detectron2" ] || die "pb1-detectron2 source not found; log: $BUNDLE/work/d2.log"
  # A pure-Python wheel: detectron2's C++ ops are not built (mona_scale uses torchvision's
  # ROIAlign and NMS), the same as the project environment's empty stub extension.
  local stage="$BUNDLE/work/detectron2-0.6"
  mkdir -p "$stage" && cp -r "$src/detectron2" "$stage/"
  [ -d "$stage/detectron2/model_zoo/configs" ] || cp -r "$src/configs" "$stage/detectron2/model_zoo/configs"
  printf '"""Stub: detectron2 built without its C++ ops (mona_scale uses torchvision'"'"'s)."""\n' \
    >"$stage/detectron2/_C.py"
  cat >"$stage/setup.py" <<'PYEOF'
from setuptools import find_packages, setup

setup(name="detectron2", version="0.6",
      packages=find_packages(include=["detectron2", "detectron2.*"]),
      package_data={"detectron2.model_zoo": ["configs/*", "configs/**/*"]},
      install_requires=["fvcore", "iopath", "omegaconf", "hydra-core", "pycocotools",
                        "termcolor", "yacs", "tabulate", "cloudpickle", "Pillow",
                        "matplotlib", "tqdm"])
PYEOF
  "${pip[@]}" wheel --no-deps --no-build-isolation -w "$BUNDLE/wheels" "$stage" \
    >"$BUNDLE/work/d2_wheel.log" 2>&1 || { tail -n 20 "$BUNDLE/work/d2_wheel.log" >&2; die "detectron2 wheel failed"; }
  log "  detectron2==0.6: pure-Python wheel"
  rm -rf "$BUNDLE/work"

  log "checking that every wheel installs on CPython $TARGET_PYTHON_VERSION linux x86_64 (pip --dry-run)"
  "${pip[@]}" install --dry-run --no-index --no-deps --ignore-installed --target "$BUNDLE/.dry" \
    --python-version "$TARGET_PYTHON_VERSION" --implementation cp "${platform_flags[@]}" \
    --only-binary=:all: "$BUNDLE"/wheels/*.whl || die "a wheel does not fit the GPU machine"
  rm -rf "$BUNDLE/.dry"
  (cd "$BUNDLE" && sha256sum wheels/*.whl >MANIFEST.sha256)

  local size tracked
  size=$(du -sb "$BUNDLE" | cut -f1)
  tracked=$(cd "$ROOT" && git ls-files -z | xargs -0 du -cb 2>/dev/null | tail -n1 | cut -f1)
  log "bundle: $BUNDLE, $(ls "$BUNDLE/wheels" | wc -l) wheels, $size bytes" \
      "($(awk "BEGIN{printf \"%.1f\", $size/1048576}") MiB; tracked files" \
      "$(awk "BEGIN{printf \"%.1f\", $tracked/1048576}") MiB; limit 64 MiB together)"
  [ $((size + tracked)) -le $LIMIT_BYTES ] || die "bundle + tracked files exceed 64 MiB"
  log "prepared in $((SECONDS - start)) s. On the GPU machine: bash tools/gpu_check.sh" \
      "(device tool: carry=[\".cache/gpu_bundle\"])"
}

# ---------------------------------------------------------------------------------------
STEPS_TSV=""
record() {  # step status seconds detail
  printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$STEPS_TSV"
  log "step $1: $2 (${3}s) $4"
}

run_step() {  # name timeout command...: runs, logs, records; returns the command's status
  local name="$1" limit="$2"; shift 2
  local t0=$SECONDS rc
  log "== $name: $*"
  timeout --kill-after=10 "$limit" "$@" 2>&1 | tee -a "$LOG"
  rc=${PIPESTATUS[0]}
  local status=ok detail=""
  if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then status=timeout; detail="stopped after ${limit}s"
  elif [ "$rc" != 0 ]; then status=failed; detail="exit status $rc"; fi
  record "$name" "$status" "$((SECONDS - t0))" "$detail"
  return "$rc"
}

install_bundle() {  # (in a subshell) the venv over $base with the bundle and mona_scale
  set -e
  (cd "$BUNDLE" && sha256sum --quiet -c MANIFEST.sha256)
  rm -rf "$VENV"
  # --without-pip: no ensurepip needed (a python without python3-venv's ensurepip works);
  # pip comes from the base python's site-packages, seen through the venv
  "$base" -m venv --system-site-packages --without-pip "$VENV"
  # A base python that is itself a venv (the GPU image's python3 is /opt/torch/.venv/...):
  # --system-site-packages reaches only ITS base, so add the base venv's site-packages too.
  local own base_sites site_dir
  own="$("$VENV/bin/python" -c 'import site; print(site.getsitepackages()[0])')"
  base_sites="$("$base" -c 'import site, sys
if sys.prefix != sys.base_prefix: print("\n".join(site.getsitepackages()))')"
  for site_dir in $base_sites; do
    echo "import site; site.addsitedir('$site_dir')" >>"$own/_gpu_check_base_python.pth"
  done
  "$VENV/bin/python" -m pip --version >/dev/null 2>&1 || "$VENV/bin/python" -m ensurepip -q
  "$VENV/bin/python" -m pip --disable-pip-version-check -q install --no-index --no-deps \
    --no-cache-dir "$BUNDLE"/wheels/*.whl
  if ! "$VENV/bin/python" -m pip --disable-pip-version-check -q install --no-index --no-deps \
      --no-build-isolation -e "$ROOT"; then
    echo "editable install failed: putting $ROOT on the venv's path instead"
    "$VENV/bin/python" -c "import site, sys; open(site.getsitepackages()[0] + \
'/mona_scale_src.pth', 'w').write(sys.argv[1])" "$ROOT"
  fi
  "$VENV/bin/python" -c "import $IMPORTS, mona_scale; print('torch', torch.__version__, \
'cuda', torch.version.cuda, 'detectron2', detectron2.__version__, 'deepspeed', \
deepspeed.__version__)"
}

check() {
  local out="${GPU_CHECK_OUT:-${OUT:-$ROOT/output/gpu_check}}"
  mkdir -p "$out" || die "cannot create $out"
  out="$(cd "$out" && pwd)"
  LOG="$out/gpu_check.log"; : >"$LOG"
  STEPS_TSV="$(mktemp)"; : >"$STEPS_TSV"
  local base="${GPU_CHECK_PYTHON:-python3}" t0=$SECONDS failed=0
  if [ -z "${GPU_CHECK_PYTHON:-}" ] && ! python3 -c 'import torch' 2>/dev/null \
      && [ -x "$ROOT/.venv/bin/python" ]; then
    base="$ROOT/.venv/bin/python"  # a development machine: the project environment
  fi
  export TORCH_EXTENSIONS_DIR="${TORCH_EXTENSIONS_DIR:-$ROOT/.cache/torch_extensions}"
  export WANDB_MODE=disabled PYTHONUNBUFFERED=1 MONA_DATASETS="${MONA_DATASETS:-$ROOT/.cache/gpu_check_data}"
  cd "$ROOT" || die "cannot enter $ROOT"

  command -v "$base" >/dev/null || die "no python '$base' (set GPU_CHECK_PYTHON)"
  "$base" -c 'import torch, torchvision' 2>/dev/null \
    || die "$base has no torch/torchvision: the check uses the machine's own (set GPU_CHECK_PYTHON)"
  local py="$base"
  # 1. install
  if [ "${GPU_CHECK_INSTALL:-0}" != 1 ] && "$base" -c "import $IMPORTS, mona_scale" 2>/dev/null; then
    record install skipped 0 "$base already imports every dependency and mona_scale"
  elif [ ! -d "$BUNDLE/wheels" ]; then
    record install failed 0 "no bundle at $BUNDLE: run tools/gpu_check.sh --prepare where a registry is reachable"
    failed=1
  else
    export base VENV BUNDLE ROOT IMPORTS
    export -f install_bundle
    if run_step install "${GPU_CHECK_INSTALL_TIMEOUT:-120}" bash -c install_bundle; then
      py="$VENV/bin/python"
    else
      failed=1
    fi
  fi

  local cuda
  cuda="$("$py" -c 'import torch; print(int(torch.cuda.is_available()))' 2>/dev/null || echo 0)"
  local why="no CUDA device (torch.cuda.is_available() is False)"
  local bench_args
  read -r -a bench_args <<<"${GPU_CHECK_BENCH_ARGS:-}"
  if [ "$failed" = 0 ]; then
    # 2. gpu tests (each skips itself without CUDA)
    run_step "gpu tests" "${GPU_CHECK_TESTS_TIMEOUT:-210}" "$py" -m pytest -m gpu tests/test_gpu.py \
      -rs -p no:cacheprovider --junitxml="$out/pytest_gpu.xml" || failed=1
    # 3. benchmark
    if [ "$cuda" = 1 ]; then
      run_step benchmark "${GPU_CHECK_BENCH_TIMEOUT:-150}" "$py" benchmarks/bench_gpu.py \
        --output "$out" "${bench_args[@]}" || failed=1
    else
      record "benchmark (GPU)" skipped 0 "$why"
      run_step "benchmark --cpu-smoke" "${GPU_CHECK_BENCH_TIMEOUT:-150}" "$py" \
        benchmarks/bench_gpu.py --cpu-smoke --output "$out" "${bench_args[@]}" || failed=1
    fi
  fi
  # 4. report
  "$py" - "$STEPS_TSV" "$out" "$cuda" "$((SECONDS - t0))" <<'PYEOF' || failed=1
import datetime
import json
import os
import platform
import sys
import xml.etree.ElementTree as ET

steps_tsv, out, cuda, total = sys.argv[1], sys.argv[2], sys.argv[3] == "1", int(sys.argv[4])
import torch

steps = []
with open(steps_tsv) as f:
    for line in f:
        name, status, seconds, detail = line.rstrip("\n").split("\t")
        steps.append({"step": name, "status": status, "seconds": int(seconds), "detail": detail})
tests = []
xml_path = os.path.join(out, "pytest_gpu.xml")
if os.path.exists(xml_path):
    for case in ET.parse(xml_path).iter("testcase"):
        outcome, detail = "passed", ""
        for tag in ("failure", "error", "skipped"):
            node = case.find(tag)
            if node is not None:
                outcome = {"failure": "failed", "error": "error"}.get(tag, tag)
                detail = (node.get("message") or "").splitlines()[0][:200] if node.get(
                    "message") else ""
        tests.append({"test": case.get("name"), "outcome": outcome,
                      "seconds": round(float(case.get("time", 0)), 1), "detail": detail})
bench = None
if os.path.exists(os.path.join(out, "bench_gpu.json")):
    with open(os.path.join(out, "bench_gpu.json")) as f:
        bench = json.load(f)
skipped = [{"what": s["step"], "why": s["detail"]} for s in steps if s["status"] == "skipped"]
skipped += [{"what": f"test {t['test']}", "why": t["detail"]} for t in tests
            if t["outcome"] == "skipped"]
report = {
    "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    "gpu": torch.cuda.get_device_name(0) if cuda else None, "cuda_available": cuda,
    "torch": torch.__version__, "cuda": torch.version.cuda, "python": platform.python_version(),
    "total_seconds": total, "ok": all(s["status"] in ("ok", "skipped") for s in steps)
    and all(t["outcome"] in ("passed", "skipped") for t in tests),
    "steps": steps, "tests": tests, "skipped": skipped, "benchmark": bench,
}
with open(os.path.join(out, "gpu_check.json"), "w") as f:
    json.dump(report, f, indent=2)
md = [f"## GPU check, {report['date']}", "",
      f"{report['gpu'] or 'no GPU'}; torch {report['torch']} (CUDA {report['cuda']}), "
      f"Python {report['python']}; {total} s; {'all passed' if report['ok'] else 'FAILED'}", "",
      "| step | status | seconds | detail |", "|---|---|---|---|"]
md += [f"| {s['step']} | {s['status']} | {s['seconds']} | {s['detail']} |" for s in steps]
if tests:
    md += ["", "| test | outcome | seconds | detail |", "|---|---|---|---|"]
    md += [f"| {t['test']} | {t['outcome']} | {t['seconds']} | {t['detail']} |" for t in tests]
if skipped:
    md += ["", "Skipped: " + "; ".join(f"{s['what']} ({s['why']})" for s in skipped)]
if bench is not None:
    with open(os.path.join(out, "bench_gpu.md")) as f:
        md += ["", f.read().rstrip()]
with open(os.path.join(out, "gpu_check.md"), "w") as f:
    f.write("\n".join(md) + "\n")
print("\n".join(md))
PYEOF
  rm -f "$STEPS_TSV"
  log "wrote $out/gpu_check.json and gpu_check.md ($((SECONDS - t0)) s)"
  return "$failed"
}

case "${1:-}" in
  --prepare) prepare ;;
  "") check; exit $? ;;
  -h|--help) sed -n '2,31p' "${BASH_SOURCE[0]}" ;;
  *) die "unknown option '$1' (use --prepare, or no option to run the check)" ;;
esac
