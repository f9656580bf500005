#!/usr/bin/env bash
# Runs a PyTorch reference: benches/reference/$REFERENCE, by default rl_iteration.py (the
# reference of benches/rl_iteration.rs; arguments --mode, --steps, --threads); with
# REFERENCE=oracle_ppo.py, the independent PPO of the benchmark's oracle mode (--run DIR ...).
# Uses $PYTHON when it already has torch and transformers; otherwise makes a virtual environment
# in target/reference-venv and installs benches/reference/requirements.txt from PyPI (a large
# download: PyPI's Linux torch wheel brings CUDA libraries).
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
exec "$python" "benches/reference/${REFERENCE:-rl_iteration.py}" "$@"
