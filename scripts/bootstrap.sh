# Sourced by run.sh and test.sh: creates the virtual environment on first use and installs avatarify into it.
# Usage: bootstrap_venv [EXTRAS]    (e.g. bootstrap_venv model,test)
# Honours AVATARIFY_VENV (default: .venv beside this repository) and PYTHON (default: python3).

bootstrap_venv() {
    local extras="${1:-}"
    local root
    root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
    VENV="${AVATARIFY_VENV:-$root/.venv}"
    local python="${PYTHON:-python3}"
    if [ ! -x "$VENV/bin/python" ]; then
        echo "Creating the Python environment in $VENV ..."
        "$python" -m venv "$VENV" || {
            echo "error: '$python -m venv' failed. Install Python 3.9+ with venv support" \
                "(Debian/Ubuntu: sudo apt install python3-venv), or set PYTHON=/path/to/python3." >&2
            return 1
        }
    fi
    local stamp="$VENV/.avatarify-installed${extras:+-${extras//,/-}}"
    if [ ! -f "$stamp" ] || [ "$root/setup.cfg" -nt "$stamp" ]; then
        echo "Installing avatarify and its dependencies ..."
        # PyTorch first, so that no dependency pulls in another build of it. On Linux x86_64 it is pinned:
        # machines that keep that release locally get its CPU build instead of a multi-GB CUDA download.
        if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
            if [ "$(uname -s)" = Linux ] && [ "$(uname -m)" = x86_64 ]; then
                "$VENV/bin/python" -m pip install --quiet "torch==${AVATARIFY_TORCH_VERSION:-2.13.0}"
            else
                "$VENV/bin/python" -m pip install --quiet torch
            fi
        fi
        "$VENV/bin/python" -m pip install --quiet -e "$root${extras:+[$extras]}"
        touch "$stamp"
    fi
}
