#!/usr/bin/env bash
# Create or refresh the project environment in .venv/ (never touches the system Python).
#
# Idempotent: every step checks what is already there. Usage: bash tools/setup_env.sh
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${MONA_VENV:-$ROOT/.venv}"
CACHE="$ROOT/.cache"
TORCH_VERSION="2.14.1"
TORCHVISION_VERSION="0.29.1"
DEEPSPEED_VERSION="0.19.8"

log() { printf '[setup_env] %s\n' "$*"; }
die() { printf '[setup_env] ERROR: %s\n' "$*" >&2; exit 1; }

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

if ! have torch "$TORCH_VERSION" || ! have torchvision "$TORCHVISION_VERSION"; then
  log "installing torch==$TORCH_VERSION torchvision==$TORCHVISION_VERSION"
  "${PIP[@]}" install "torch==$TORCH_VERSION" "torchvision==$TORCHVISION_VERSION" \
    || die "could not install torch==$TORCH_VERSION / torchvision==$TORCHVISION_VERSION"
fi

log "installing python dependencies (requirements.txt)"
"${PIP[@]}" install -r "$ROOT/requirements.txt" || die "pip install -r requirements.txt failed"

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
  || die "environment check failed: python -c 'import torch, torchvision, detectron2, deepspeed, mona_scale'"
touch "$VENV/.mona_env_ok"
log "environment ready: $VENV"
