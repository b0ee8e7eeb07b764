#!/usr/bin/env bash
# Offline install of detectron2 v0.6 from PyPI's pb1-detectron2 source distribution.
#
# detectron2 has no official PyPI release; pb1-detectron2==0.6 is the v0.6 tag's source
# without detectron2/layers/csrc and the top-level configs/. pip refuses to install it from
# the index (an extra declares a direct URL dependency) but `pip download --no-clean`
# leaves the unpacked source behind. We add a stub C++ module, restore configs/ from
# detectron2/model_zoo/configs and install that directory.
# Usage: install_detectron2.sh <venv python> <work dir>
set -euo pipefail
PY="$1"; WORK="$2"
VERSION="0.6"
log() { printf '[install_detectron2] %s\n' "$*"; }
die() { printf '[install_detectron2] ERROR: %s\n' "$*" >&2; exit 1; }

rm -rf "$WORK"; mkdir -p "$WORK/tmp"
log "downloading pb1-detectron2==$VERSION source (the 'direct URL dependencies' error is expected)"
TMPDIR="$WORK/tmp" "$PY" -m pip --disable-pip-version-check -q download --no-clean --no-deps \
  --no-build-isolation -d "$WORK/dist" "pb1-detectron2==$VERSION" >"$WORK/download.log" 2>&1 || true
SRC="$(find "$WORK/tmp" -maxdepth 3 -type f -name setup.py -path '*pb1-detectron2*' -printf '%h\n' | head -n1)"
[ -n "$SRC" ] && [ -d "$SRC/detectron2" ] \
  || die "pb1-detectron2==$VERSION source not found after pip download; log: $WORK/download.log"
log "source in $SRC"

mkdir -p "$SRC/detectron2/layers/csrc"
cat >"$SRC/detectron2/layers/csrc/vision.cpp" <<'CPP'
// Stub: mona_scale uses torchvision's ROIAlign/NMS; detectron2's custom ops are not built.
#include <pybind11/pybind11.h>  // no torch headers: the stub defines no op (builds in seconds)
PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {}
CPP
if [ ! -d "$SRC/configs" ]; then
  cp -r "$SRC/detectron2/model_zoo/configs" "$SRC/configs" || die "cannot restore configs/"
fi
log "building and installing detectron2 $VERSION"
"$PY" -m pip --disable-pip-version-check -q install --no-build-isolation --no-deps "$SRC" \
  >"$WORK/install.log" 2>&1 || { tail -n 30 "$WORK/install.log" >&2; die "pip install of $SRC failed; log: $WORK/install.log"; }
"$PY" -c 'import mona_scale.compat' 2>/dev/null || true
log "detectron2 $VERSION installed"
