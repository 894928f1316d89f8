#!/usr/bin/env bash
# Installs avatarify with its test dependencies (first run only) and runs the whole test suite.
# Extra arguments go to pytest, e.g. ./test.sh -k animate
set -euo pipefail
cd "$(dirname "$0")"
source scripts/bootstrap.sh

# The full-window GUI test needs a virtual X server; installed when we may (root with apt), skipped otherwise.
if ! command -v Xvfb >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "Installing Xvfb for the GUI test ..."
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq xvfb libxcb-icccm4 libxcb-keysyms1 \
        libxcb-xinerama0 libxcb-image0 libxcb-render-util0 libxkbcommon-x11-0 libxcb-randr0 libxcb-shape0 \
        libxcb-xkb1 libgl1 >/dev/null) || echo "Could not install Xvfb; the full-window GUI test will be skipped."
fi

# serve: Ray Serve for the `worker --ray` tests (about a minute to install, three to test).
bootstrap_venv model,onnx,serve,test
export QT_QPA_PLATFORM=offscreen
exec "$VENV/bin/python" -m pytest "$@"
