#!/usr/bin/env bash
# Start avatarify. The first run creates .venv beside this script and installs the app into it (PyTorch is
# large: this takes a while); later runs start at once and reinstall only when setup.cfg changed.
# Arguments go to `avatarify`, e.g. ./run.sh --camera my-video.mp4
set -euo pipefail
cd "$(dirname "$0")"
source scripts/bootstrap.sh
bootstrap_venv model,onnx
exec "$VENV/bin/avatarify" "$@"
