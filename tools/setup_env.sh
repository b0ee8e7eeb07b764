#!/usr/bin/env bash
# Set up mona_scale's dependencies.
#
#   bash tools/setup_env.sh                       # create or refresh .venv/ (make env):
#                                                 # torch 2.14.1 / torchvision 0.29.1 from PyPI
#   bash tools/setup_env.sh --python /path/python # into an existing environment (conda,
#   bash tools/setup_env.sh --prefix /path/env    # module, venv) that already has a torch:
#                                                 # everything else, keeping its torch
#
# Into an existing environment, the installed torch and torchvision are pinned through a pip
# constraints file for every install, so nothing replaces them (a package that needs
# another torch makes pip fail instead); torchvision is installed (matching torch) only if
# missing. detectron2 v0.6 is built against that torch (tools/install_detectron2.sh), and
# mona_scale is installed in editable mode. Tested with torch 2.14.1 / torchvision 0.29.1
# (what `make env` installs); setup.py asks for torch >= 2.4, older torches than 2.14 have
# not been tested. Idempotent: every step checks what is already there.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="$ROOT/.cache"
TORCH_VERSION="2.14.1"
TORCHVISION_VERSION="0.29.1"
DEEPSPEED_VERSION="0.19.8"
MIN_TORCH="2.4"

log() { printf '[setup_env] %s\n' "$*"; }
die() { printf '[setup_env] ERROR: %s\n' "$*" >&2; exit 1; }
usage() { sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

TARGET_PY=
while [ $# -gt 0 ]; do
  case $1 in
    --python) TARGET_PY=${2:?--python needs the path of a python}; shift 2 ;;
    --python=*) TARGET_PY=${1#--python=}; shift ;;
    --prefix) TARGET_PY=${2:?--prefix needs an environment directory}/bin/python; shift 2 ;;
    --prefix=*) TARGET_PY=${1#--prefix=}/bin/python; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument '$1'" ;;
  esac
done

if [ -n "$TARGET_PY" ]; then
  # ---------------------------------------------------------------- existing environment
  PY="$TARGET_PY"
  [ -x "$PY" ] || die "$PY is not an executable python"
  "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
    || die "Python >= 3.10 is required, $PY is $("$PY" --version 2>&1)"
  "$PY" -m pip --version >/dev/null 2>&1 || die "$PY has no pip (python -m pip)"
  TORCH_FOUND=$("$PY" -c 'import importlib.metadata as m; print(m.version("torch"))' 2>/dev/null) \
    || die "$PY has no torch: install your torch first, or run without --python to create .venv/"
  "$PY" - "$TORCH_FOUND" "$MIN_TORCH" <<'PYEOF' || die "torch $TORCH_FOUND is older than $MIN_TORCH"
import sys
def parse(v):
    return tuple(int(x) for x in v.split("+")[0].split(".")[:2])
sys.exit(parse(sys.argv[1]) < parse(sys.argv[2]))
PYEOF
  log "installing into $PY (torch $TORCH_FOUND is kept)"
  mkdir -p "$CACHE"
  CONSTRAINTS="$CACHE/setup_env_constraints.txt"
  TV_FOUND=$("$PY" -c 'import importlib.metadata as m; print(m.version("torchvision"))' 2>/dev/null || true)
  {
    echo "torch==$TORCH_FOUND"
    if [ -n "$TV_FOUND" ]; then echo "torchvision==$TV_FOUND"; fi
  } >"$CONSTRAINTS"
  export PIP_CONSTRAINT="$CONSTRAINTS"  # every pip call below, and install_detectron2.sh's
  PIP=("$PY" -m pip --disable-pip-version-check -q)
  if [ -z "$TV_FOUND" ]; then
    # torchvision 0.(m+15) goes with torch 2.m
    TV_SPEC=$("$PY" -c 'import sys; m = int(sys.argv[1].split(".")[1]); print(f"torchvision==0.{m + 15}.*")' "$TORCH_FOUND")
    log "no torchvision: installing $TV_SPEC (for torch $TORCH_FOUND)"
    "${PIP[@]}" install "$TV_SPEC" || die "could not install $TV_SPEC next to torch $TORCH_FOUND"
  fi
else
  # ---------------------------------------------------------------------------- .venv
  VENV="${MONA_VENV:-$ROOT/.venv}"
  PYTHON="${PYTHON:-python3}"
  command -v "$PYTHON" >/dev/null || die "no '$PYTHON' on PATH; install Python >= 3.10"
  "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
    || die "Python >= 3.10 is required, found $("$PYTHON" --version 2>&1)"
  if [ ! -x "$VENV/bin/python" ]; then
    log "creating virtual environment in $VENV"
    "$PYTHON" -m venv "$VENV" || die "python -m venv failed (on Debian: apt-get install python3-venv)"
  fi
  PY="$VENV/bin/python"
  PIP=("$PY" -m pip --disable-pip-version-check -q)
  mkdir -p "$CACHE"
fi

have() { "$PY" - "$@" <<'PYEOF' 2>/dev/null
import importlib.metadata as md, sys
name, version = sys.argv[1], (sys.argv[2] if len(sys.argv) > 2 else None)
try:
    v = md.version(name)
except md.PackageNotFoundError:
    sys.exit(1)
sys.exit(0 if version is None or v.split("+")[0] == version else 1)
PYEOF
}

if [ -z "$TARGET_PY" ]; then
  if ! have torch "$TORCH_VERSION" || ! have torchvision "$TORCHVISION_VERSION"; then
    log "installing torch==$TORCH_VERSION torchvision==$TORCHVISION_VERSION"
    "${PIP[@]}" install "torch==$TORCH_VERSION" "torchvision==$TORCHVISION_VERSION" \
      || die "could not install torch==$TORCH_VERSION / torchvision==$TORCHVISION_VERSION"
  fi
fi

log "installing python dependencies (requirements.txt)"
"${PIP[@]}" install -r "$ROOT/requirements.txt" \
  || die "pip install -r requirements.txt failed${TARGET_PY:+ (with torch pinned to $TORCH_FOUND: a package above may need another torch)}"

if ! "$PY" -c 'import detectron2' 2>/dev/null; then
  bash "$ROOT/tools/install_detectron2.sh" "$PY" "$CACHE/detectron2" \
    || die "detectron2 install failed (see the messages above)"
fi

if ! have deepspeed "$DEEPSPEED_VERSION"; then
  log "installing deepspeed==$DEEPSPEED_VERSION (no prebuilt ops)"
  DS_BUILD_OPS=0 "${PIP[@]}" install --no-build-isolation "deepspeed==$DEEPSPEED_VERSION" \
    || die "deepspeed==$DEEPSPEED_VERSION install failed"
fi

log "installing mona_scale (editable)"
"${PIP[@]}" install --no-build-isolation --no-deps -e "$ROOT" || die "pip install -e . failed"

"$PY" -c 'import torch, torchvision, detectron2, deepspeed, mona_scale' 2>/dev/null \
  || die "environment check failed: $PY -c 'import torch, torchvision, detectron2, deepspeed, mona_scale'"
if [ -n "$TARGET_PY" ]; then
  TORCH_AFTER=$("$PY" -c 'import importlib.metadata as m; print(m.version("torch"))')
  [ "$TORCH_AFTER" = "$TORCH_FOUND" ] || die "torch changed from $TORCH_FOUND to $TORCH_AFTER"
  log "environment ready: $PY (torch $TORCH_AFTER, unchanged)"
else
  touch "$VENV/.mona_env_ok"
  log "environment ready: $VENV"
fi
