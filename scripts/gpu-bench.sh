#!/usr/bin/env bash
# Prepares a GPU run on this (CPU) machine: builds one stripped `saferlhf` binary with the
# `vulkan` feature (a CUDA binary cannot be built offline: burn's CUDA backend downloads an LLVM
# bundle at build time) and fetches the Vulkan loader (Debian's libvulkan1) beside it, under
# target/gpu/. The stripped binary is about 118 MiB (burn's SPIR-V compiler and kernels), so it
# travels xz-compressed (about 21 MiB; gpu-run.sh unpacks it): target/gpu/ then fits a 64 MiB
# carry beside the working tree (7 MiB). Then, on a machine
# with an NVIDIA GPU (the driver, Python with torch and transformers, no Rust, no network):
#
#     bash scripts/gpu-run.sh        # checks, benchmarks, PyTorch references, one table
#
# Environment: CARGO_TARGET_DIR (default target/vulkan, so that the vulkan build does not
# rebuild the default one), SAFERLHF_GPU_FEATURES (default vulkan).
set -euo pipefail
cd "$(dirname "$0")/.."
features="${SAFERLHF_GPU_FEATURES:-vulkan}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target/vulkan}"
out=target/gpu
echo "gpu-bench: building saferlhf with --features $features (release) in $CARGO_TARGET_DIR"
cargo build --release -p saferlhf-cli --features "$features"
rm -rf "$out"
mkdir -p "$out/bin" "$out/debs" "$out/root"
binary="$out/saferlhf.stripped"
cp "$CARGO_TARGET_DIR/release/saferlhf" "$binary"
strip "$binary"
# The newest glibc symbol version the binary needs: the GPU machine's glibc must be as new.
glibc=$(objdump -T "$binary" 2>/dev/null | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -1 || true)
echo "${glibc:-unknown}" > "$out/glibc-needed"
echo "gpu-bench: compressing the $(du -m "$binary" | cut -f1) MiB binary (xz)"
xz -T0 -6 -c "$binary" > "$out/saferlhf.xz"
sha256sum "$binary" | cut -d' ' -f1 > "$out/saferlhf.sha256"
rm "$binary"

# The Vulkan loader, from this machine's package archive (apt-get download needs no root; the
# package lists may need an update first, which does).
(
    cd "$out/debs"
    if ! apt-get download libvulkan1 >/dev/null 2>&1; then
        sudo=""
        [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && sudo="sudo"
        $sudo apt-get update -qq
        apt-get download libvulkan1 >/dev/null
    fi
)
for deb in "$out"/debs/*.deb; do
    dpkg-deb -x "$deb" "$out/root"
done
loader=$(find "$out/root" -name 'libvulkan.so.1*' | head -1)
[ -n "$loader" ] || { echo "gpu-bench: no libvulkan.so.1 in the fetched package" >&2; exit 1; }
ln -sf "$(realpath --relative-to="$out/bin" "$loader")" "$out/bin/libvulkan.so.1"
size=$(du -sm "$out" | cut -f1)
echo "gpu-bench: $out is ${size} MiB (compressed binary $(du -m "$out/saferlhf.xz" | cut -f1) MiB; needs ${glibc:-?})"
if [ "$size" -gt 60 ]; then
    echo "gpu-bench: $out is over 60 MiB: it will not fit a 64 MiB carry beside the working tree" >&2
    exit 1
fi
echo "gpu-bench: ready. Carry target/gpu with the working tree and run: bash scripts/gpu-run.sh"
