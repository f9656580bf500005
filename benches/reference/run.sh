#!/usr/bin/env bash
# Runs the PyTorch reference of benches/rl_iteration.rs. Uses $PYTHON when it already has torch
# and transformers; otherwise makes a virtual environment in target/reference-venv and installs
# benches/reference/requirements.txt from PyPI (a large download: PyPI's Linux torch wheel
# brings CUDA libraries). Arguments go to rl_iteration.py (--mode, --steps, --threads).
set -euo pipefail
cd "$(dirname "$0")/../.."
python="${PYTHON:-python3}"
if ! "$python" -c "import torch, transformers" 2>/dev/null; then
    venv=target/reference-venv
    if [ ! -x "$venv/bin/python" ]; then
        python3 -m venv "$venv"
        "$venv/bin/pip" install --quiet -r benches/reference/requirements.txt
    fi
    python="$venv/bin/python"
fi
exec "$python" benches/reference/rl_iteration.py "$@"
