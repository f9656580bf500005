#!/usr/bin/env bash
# Runs on a GPU machine (prepared by scripts/gpu-bench.sh): the device-parity checks against the
# CPU (`saferlhf check-device`), saferlhf's speed and memory figures (`saferlhf bench speed`),
# the PyTorch references of the same figures on the same card (benches/reference/speed.py), and
# one table of ratios (benches/reference/compare.py). Writes everything under $OUT (default
# target/gpu-out): check-device.{md,json}, speed-saferlhf.json, speed-pytorch.json,
# ratios.{md,json}, and a log per step. A failed step is reported and the others still run; the
# exit status is 1 when any step failed.
#
# Environment (defaults for an NVIDIA GPU):
#   SAFERLHF_BIN           the binary (target/gpu/bin/saferlhf)
#   SAFERLHF_DEVICE        saferlhf's device (vulkan)
#   TORCH_DEVICE           PyTorch's device (cuda)
#   SAFERLHF_SHAPE         smollm2-135m or tiny (smollm2-135m)
#   SAFERLHF_HALF          bf16 or f16 (f16: tensor cores and every Vulkan driver have it)
#   SAFERLHF_RUNS / SAFERLHF_STEPS   timed calls / RL steps per figure (5 / 5)
#   SAFERLHF_STEP_TIMEOUT  seconds allowed to each of the four steps (170)
#   SAFERLHF_SKIP          comma-separated steps to skip: check, speed, pytorch
#
# On a CPU-only machine the same script runs the CPU half, e.g.:
#   SAFERLHF_BIN=target/release/saferlhf SAFERLHF_DEVICE=flex TORCH_DEVICE=cpu \
#     SAFERLHF_SHAPE=tiny SAFERLHF_HALF=bf16 bash scripts/gpu-run.sh
set -uo pipefail
cd "$(dirname "$0")/.."
bin="${SAFERLHF_BIN:-target/gpu/bin/saferlhf}"
device="${SAFERLHF_DEVICE:-vulkan}"
torch_device="${TORCH_DEVICE:-cuda}"
shape="${SAFERLHF_SHAPE:-smollm2-135m}"
half="${SAFERLHF_HALF:-f16}"
runs="${SAFERLHF_RUNS:-5}"
steps="${SAFERLHF_STEPS:-5}"
limit="${SAFERLHF_STEP_TIMEOUT:-170}"
skip=",${SAFERLHF_SKIP:-},"
out="${OUT:-target/gpu-out}"
mkdir -p "$out"
failed=()
python="${PYTHON:-python3}"

# Unpack the binary gpu-bench.sh compressed (xz, else Python's lzma), checking its hash.
if [ ! -x "$bin" ] && [ -f target/gpu/saferlhf.xz ] && [ "$bin" = target/gpu/bin/saferlhf ]; then
    echo "unpacking target/gpu/saferlhf.xz"
    if command -v xz >/dev/null 2>&1; then
        xz -d -c target/gpu/saferlhf.xz > "$bin.part"
    else
        "$python" -c "import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], 'wb'))" \
            target/gpu/saferlhf.xz "$bin.part"
    fi
    if [ -f target/gpu/saferlhf.sha256 ] &&
        [ "$(sha256sum "$bin.part" | cut -d' ' -f1)" != "$(cat target/gpu/saferlhf.sha256)" ]; then
        echo "gpu-run: the unpacked binary's sha256 differs from gpu-bench.sh's" >&2
        exit 1
    fi
    chmod +x "$bin.part" && mv "$bin.part" "$bin"
fi
[ -x "$bin" ] || { echo "gpu-run: no binary at $bin (run scripts/gpu-bench.sh first, or set SAFERLHF_BIN)" >&2; exit 1; }

echo "== machine"
{ nvidia-smi -L 2>/dev/null || echo "no nvidia-smi"; } | tee "$out/machine.txt"
echo "glibc here: $(ldd --version 2>/dev/null | head -1); the binary needs $(cat target/gpu/glibc-needed 2>/dev/null || echo '?')" | tee -a "$out/machine.txt"
"$python" -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__, 'cuda', torch.cuda.is_available())" 2>&1 | tee -a "$out/machine.txt"

# The Vulkan loader: the system's, else the one gpu-bench.sh carried beside the binary.
if ! ldconfig -p 2>/dev/null | grep -q 'libvulkan.so.1' && [ -e "$(dirname "$bin")/libvulkan.so.1" ]; then
    export LD_LIBRARY_PATH="$(cd "$(dirname "$bin")" && pwd)${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    echo "using the carried Vulkan loader" | tee -a "$out/machine.txt"
fi
# NVIDIA's Vulkan driver: its ICD file where the driver installed one; else one written here for
# the driver's library (containers often mount libGLX_nvidia without the ICD file).
if [ "$device" = vulkan ] && ! ls /usr/share/vulkan/icd.d/nvidia*.json /etc/vulkan/icd.d/nvidia*.json >/dev/null 2>&1; then
    glx=$(ldconfig -p 2>/dev/null | awk '/libGLX_nvidia.so.0/ {print $NF; exit}')
    [ -z "$glx" ] && glx=$(find /usr/lib /usr/lib64 /usr/local -name 'libGLX_nvidia.so.0' 2>/dev/null | head -1)
    if [ -n "$glx" ]; then
        icd="$PWD/$out/nvidia_icd.json"
        printf '{"file_format_version":"1.0.0","ICD":{"library_path":"%s","api_version":"1.3.0"}}\n' "$glx" > "$icd"
        export VK_ICD_FILENAMES="$icd" VK_DRIVER_FILES="$icd"
        echo "wrote a Vulkan ICD file for $glx" | tee -a "$out/machine.txt"
    else
        echo "no NVIDIA Vulkan ICD or libGLX_nvidia.so.0 found: the vulkan device will not start" | tee -a "$out/machine.txt"
    fi
fi

step() { # name, command...
    local name="$1"
    shift
    if [[ "$skip" == *",$name,"* ]]; then
        echo "== $name: skipped"
        return
    fi
    echo "== $name ($(date +%T))"
    local start=$SECONDS
    timeout --kill-after=10 "$limit" "$@" 2>&1 | tee "$out/$name.log"
    local status=${PIPESTATUS[0]}
    echo "-- $name: exit $status in $((SECONDS - start)) s"
    [ "$status" -eq 0 ] || failed+=("$name (exit $status)")
}

step check "$bin" check-device --device "$device" --json "$out/check-device.json"
grep '^|' "$out/check.log" > "$out/check-device.md" 2>/dev/null
step speed "$bin" bench speed --device "$device" --shape "$shape" --half "$half" \
    --runs "$runs" --steps "$steps" --json "$out/speed-saferlhf.json"
step pytorch "$python" benches/reference/speed.py --device "$torch_device" --shape "$shape" \
    --half "$half" --runs "$runs" --steps "$steps" --json "$out/speed-pytorch.json"

echo "== ratios"
if [ -f "$out/speed-saferlhf.json" ] && [ -f "$out/speed-pytorch.json" ]; then
    "$python" benches/reference/compare.py "$out/speed-saferlhf.json" "$out/speed-pytorch.json" \
        --json "$out/ratios.json" | tee "$out/ratios.md"
else
    echo "no ratio table: a figure file is missing"
    failed+=("ratios")
fi
if [ "${#failed[@]}" -gt 0 ]; then
    echo "gpu-run: failed: ${failed[*]}"
    exit 1
fi
echo "gpu-run: all steps passed; results in $out"
