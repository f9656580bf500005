#!/usr/bin/env bash
# Installs lavapipe, Mesa's software Vulkan device, and the Vulkan loader from Debian's packages,
# so that the `wgpu` feature's GPU code path runs on a machine without a GPU (the device-parity
# tests, tests/it/device_parity.rs). Does nothing when a Vulkan ICD for lavapipe is already there.
# Needs root or sudo, and Debian's package archive.
set -euo pipefail
icd_present() {
    ls /usr/share/vulkan/icd.d/lvp_icd*.json >/dev/null 2>&1 &&
        ldconfig -p 2>/dev/null | grep -q 'libvulkan.so.1'
}
if icd_present; then
    echo "lavapipe: already installed"
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "install-lavapipe: not root and no sudo; install mesa-vulkan-drivers and libvulkan1" >&2
        exit 1
    fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends mesa-vulkan-drivers libvulkan1 >/dev/null
icd_present || { echo "install-lavapipe: the lavapipe ICD is still missing" >&2; exit 1; }
echo "lavapipe: installed"
