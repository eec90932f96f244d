#!/usr/bin/env bash
# The seed study on one GPU, scored there: the seven seed presets x SEEDS side by side on the
# card (sweep/), `seed_standard` at more seeds beside them for its collapse rate (collapse/),
# LeNet metrics every LENET_EVERY epochs and at the end, then the Inception FID of each
# finished run's final G on the card with gansweep-eval (`python -m gansweep.runs.rescore`, in
# EVAL_JOBS processes side by side: default half the cores), and only records brought back:
# summaries, metrics, evaluation records, final grids, tables. Written for a machine with
# Python and torch but no Hydra and no network (.gpu/ carried: scripts/gpu_prepare.sh), and
# rehearsed on CPU by tests/test_gpu_scripts.py. Run from the repository root:
#
#     scripts/gpu_study.sh [RETURN_DIR]   # default $RETURN_DIR, else outputs/gpu_study/return
#
# It needs the Inception weights' parts carried by this command and the earlier ones
# (.gpu/weights-<k>: scripts/gpu_prepare.sh): where one is missing or corrupt it stops at once
# with one line naming it, before any training. A study longer than one command: the same
# command again resumes the same runs (STUDY_ROOT/plan.json keeps the plan; rm -r STUDY_ROOT
# for a new one) and scores and returns what has finished each time.
#
# Settings (environment):
#   STUDY_SECONDS=540  this command's wall-clock budget, start to files written
#   STUDY_COMMANDS=1   commands the whole study may take (each STUDY_SECONDS): the plan
#                      sizes the epochs and the precision to them
#   EPOCHS=auto        auto: 1-epoch calibration sweeps measure the runs side by side, then
#                      the study gets the epochs that fit (scripts/gpu_study.py plan, at most
#                      MAX_EPOCHS=100); or a number (no calibration)
#   PRECISION=auto     auto: IEEE float32 (trainer.tf32=false) where its calibrated plan fits
#                      MAX_EPOCHS, else TF32 (a second calibration) where that trains more;
#                      the choice and why are printed and kept in plan.json. float32|tf32
#   STUDY_LAUNCHER=packed  the Hydra launcher (hydra/launcher=...): packed trains each sweep's
#                      compatible runs as one fused model in one process (docs/running.md,
#                      "Packed runs"); joblib runs one process per run (N_JOBS,
#                      EXTRA_N_JOBS: default every run of the sweep at once);
#                      LAUNCHER_OVERRIDES for its settings
#   PRESETS='glob(seed_*)'  SEEDS=0,1,2  (sweep/)
#   STUDY_EXTRA_SEEDS='range(3,13)'  seed_standard's further seeds (collapse/; empty: none),
#                      STUDY_EXTRA_EPOCHS (default: the study's), EXTRA_LENET_EVERY=1
#   LENET_EVERY=5      fid.every_epochs of sweep/: the LeNet curves
#   EVAL_FID='fid=inception fid.metrics=[fid] fid.fetch=false'  the final evaluation's fid
#                      overrides (the records of earlier studies have these; empty: no
#                      scoring), EVAL_WHICH=final (or best, both), EVAL_SECONDS=240 kept for
#                      it in the command where the plan has the runs finish (an earlier one
#                      trains to its end; runs that finish are scored by the next), EVAL_JOBS
#   DEVICE=cuda  LOG_EVERY=100  SAMPLE_EVERY=468  EXPORT_SECONDS=30
#   STUDY_OVERRIDES    more Hydra overrides for every sweep
#   STUDY_ROOT=outputs/gpu_study  DATA=.gpu/mnist (else data)  PYTHON=python3 (or .venv's)
# Returns (4 files, each well under 16 MiB): study.tar.gz (the sweeps without checkpoints or
# samples: summaries, metrics, evals/*.json, final grids, tables; plan and logs), study.txt
# (a line per run), table.md and montage.png of sweep/.
set -uo pipefail
cd "$(dirname "$0")/.."
START=$(date +%s)
STUDY_SECONDS=${STUDY_SECONDS:-540}
DEADLINE=$((START + STUDY_SECONDS))
STUDY_COMMANDS=${STUDY_COMMANDS:-1}
EPOCHS=${EPOCHS:-auto}
MAX_EPOCHS=${MAX_EPOCHS:-100}
PRECISION=${PRECISION:-auto}
DEVICE=${DEVICE:-cuda}
PRESETS=${PRESETS:-glob(seed_*)}
SEEDS=${SEEDS:-0,1,2}
STUDY_EXTRA_SEEDS=${STUDY_EXTRA_SEEDS-range(3,13)}
STUDY_LAUNCHER=${STUDY_LAUNCHER:-packed}
LENET_EVERY=${LENET_EVERY:-5}
EXTRA_LENET_EVERY=${EXTRA_LENET_EVERY:-1}
LOG_EVERY=${LOG_EVERY:-100}
SAMPLE_EVERY=${SAMPLE_EVERY:-468}
EVAL_FID=${EVAL_FID-fid=inception fid.metrics=[fid] fid.fetch=false}
EVAL_WHICH=${EVAL_WHICH:-final}
EVAL_SECONDS=${EVAL_SECONDS:-240}
EXPORT_SECONDS=${EXPORT_SECONDS:-30}
STUDY_ROOT=${STUDY_ROOT:-outputs/gpu_study}
RETURN=${1:-${RETURN_DIR:-$STUDY_ROOT/return}}
. scripts/gpu_common.sh  # PYTHON and DATA
mkdir -p "$STUDY_ROOT" "$RETURN"
STUDY_ROOT=$(cd "$STUDY_ROOT" && pwd)
RETURN=$(cd "$RETURN" && pwd)
DATA=$(cd "$DATA" && pwd)
LOG="$STUDY_ROOT/study.log"
say() { echo "[study +$(($(date +%s) - START))s] $*" | tee -a "$LOG"; }
left() { echo $((DEADLINE - $(date +%s))); }
fail() {  # the log comes back instead of the study
    say "error: $*"
    cp "$LOG" "$RETURN/"
    exit 1
}

shell=$("$PYTHON" scripts/gpu_study.py env) || fail "the environment (above)"
eval "$shell"
trap '[[ -n "${GANSWEEP_CONF_LINK:-}" ]] && rm -f "$GANSWEEP_CONF_LINK"' EXIT
say "python $("$PYTHON" -c 'import sys, torch; print(sys.version.split()[0], "torch", torch.__version__,
    "cuda", torch.version.cuda, "| GPUs:", [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())])')"
if [[ "$EVAL_FID" == *inception* ]]; then  # before any training: refused in one line
    weights=$("$PYTHON" scripts/gpu_study.py weights 2>&1) || fail "${weights##*error: }"
    say "$weights"
fi

N_JOBS=${N_JOBS:-$("$PYTHON" scripts/gpu_study.py runs "$PRESETS" "$SEEDS")}
EXTRA_N_JOBS=${EXTRA_N_JOBS:-$("$PYTHON" scripts/gpu_study.py runs seed_standard "${STUDY_EXTRA_SEEDS:-0}")}
launcher() {  # N_JOBS: the launcher's overrides for a sweep of that many runs
    if [[ "$STUDY_LAUNCHER" == joblib ]]; then
        echo "hydra/launcher=joblib hydra.launcher.n_jobs=$1"
    else
        echo "hydra/launcher=$STUDY_LAUNCHER"
    fi
}
# shellcheck disable=SC2206  # STUDY_OVERRIDES, LAUNCHER_OVERRIDES: words, as on a command line
common=("trainer.device=$DEVICE" "trainer.log_every=$LOG_EVERY"
        "trainer.sample_every=$SAMPLE_EVERY" trainer.progress=lines "dataset.root=$DATA"
        dataset.fetch=false fid=lenet fid.fetch=false ${LAUNCHER_OVERRIDES:-}
        ${STUDY_OVERRIDES:-})
sweeps() {  # CAP ROOT EPOCHS EXTRA_EPOCHS OVERRIDES...: sweep/ and collapse/ side by side
    local cap=$1 root=$2 epochs=$3 extra_epochs=$4 pids=() rc=0 p
    shift 4
    # shellcheck disable=SC2046  # the launcher's overrides: words
    timeout --signal=TERM --kill-after=30 "$cap" "$PYTHON" -m gansweep.train -m \
        "+experiment=$PRESETS" "seed=$SEEDS" $(launcher "$N_JOBS") "${common[@]}" \
        "fid.every_epochs=$LENET_EVERY" "trainer.epochs=$epochs" "$@" \
        "hydra.sweep.dir=$root/sweep" >"$root/sweep.log" 2>&1 &
    pids+=($!)
    if [[ -n "$STUDY_EXTRA_SEEDS" ]]; then
        # shellcheck disable=SC2046
        timeout --signal=TERM --kill-after=30 "$cap" "$PYTHON" -m gansweep.train -m \
            +experiment=seed_standard "seed=$STUDY_EXTRA_SEEDS" $(launcher "$EXTRA_N_JOBS") \
            "${common[@]}" "fid.every_epochs=$EXTRA_LENET_EVERY" "trainer.epochs=$extra_epochs" \
            "$@" "hydra.sweep.dir=$root/collapse" >"$root/collapse.log" 2>&1 &
        pids+=($!)
    fi
    for p in "${pids[@]}"; do
        wait "$p" || rc=$?
    done
    return $rc
}

plan="$STUDY_ROOT/plan.json"
field() { "$PYTHON" -c 'import json, sys; v = json.load(open(sys.argv[1]))[sys.argv[2]]
print(json.dumps(v) if isinstance(v, bool) else v)' "$plan" "$1"; }
reserve=$((EXPORT_SECONDS + 20))  # every command's; scoring's only where the runs finish
evaluation=$([[ -n "$EVAL_FID" ]] && echo "$EVAL_SECONDS" || echo 0)
calibrations=()
calibrate() {  # PRECISION: 1 epoch of every run side by side, then the plan
    local root="$STUDY_ROOT/calibration-$1" t0 rc
    mkdir -p "$root"
    say "calibration ($1): 1 epoch of each run side by side"
    t0=$(date +%s)
    sweeps $(($(left) / 2)) "$root" 1 1 "trainer.tf32=$([[ $1 == tf32 ]] && echo true || echo false)"
    rc=$?
    say "calibration ($1): exit $rc after $(($(date +%s) - t0)) s"
    calibrations+=(--calibration "$1" "$root" $(($(date +%s) - t0)))
    "$PYTHON" scripts/gpu_study.py plan "${calibrations[@]}" --out "$plan" \
        --deadline "$DEADLINE" --reserve "$reserve" --evaluation-seconds "$evaluation" \
        --commands "$STUDY_COMMANDS" \
        --command-seconds "$STUDY_SECONDS" --every-epochs "$LENET_EVERY" \
        --precision "$PRECISION" --max-epochs "$MAX_EPOCHS" 2>&1 | tee -a "$LOG"
    [[ -f "$plan" ]] || fail "no plan: the calibration did not finish ($root/sweep.log)"
}
if [[ "$EPOCHS" == auto && -f "$plan" ]]; then
    say "plan.json from an earlier command: $(field epochs) epochs, $(field precision)" \
        "(the same runs resume)"
elif [[ "$EPOCHS" == auto ]]; then
    [[ "$PRECISION" == tf32 ]] || calibrate float32
    if [[ "$PRECISION" == tf32 || "$(field calibrate_tf32)" == true ]]; then
        rm -f "$plan"
        calibrate tf32
    fi
fi
if [[ "$EPOCHS" == auto ]]; then
    EPOCHS=$(field epochs)
    TF32=$(field tf32)
else
    TF32=$([[ "$PRECISION" == tf32 ]] && echo true || echo false)
fi
say "precision: $([[ $TF32 == true ]] && echo 'TF32 (trainer.tf32=true)' || echo 'IEEE float32 (trainer.tf32=false)')"

if [[ -f "$plan" ]]; then  # scoring's time kept only in the command where the runs finish
    read -r budget why < <("$PYTHON" scripts/gpu_study.py budget "$plan" "$STUDY_ROOT" \
        --seconds-left $(($(left) - reserve)) --evaluation-seconds "$evaluation")
else
    budget=$(($(left) - reserve - evaluation)) why="EPOCHS=$EPOCHS: scoring's time kept"
fi
((${budget:-0} >= 30)) || fail "only ${budget:-0} s left for the study (raise STUDY_SECONDS)"
say "study: $EPOCHS epochs per run, $budget s before it is stopped ($why)"
sweeps "$budget" "$STUDY_ROOT" "$EPOCHS" "${STUDY_EXTRA_EPOCHS:-$EPOCHS}" "trainer.tf32=$TF32"
rc=$?
say "study: exit $rc$([[ $rc == 124 ]] && echo ' (stopped at the time limit: its runs checkpointed; the same command again resumes them)')"
tail -n 3 "$STUDY_ROOT/sweep.log"

if [[ -n "$EVAL_FID" ]] && (($(left) - EXPORT_SECONDS >= 10)); then
    say "evaluation: $EVAL_FID of each finished run's $EVAL_WHICH G on $DEVICE"
    # shellcheck disable=SC2086  # EVAL_FID: words, as on a command line
    timeout --signal=TERM --kill-after=10 $(($(left) - EXPORT_SECONDS)) "$PYTHON" \
        scripts/gpu_study.py score ${EVAL_JOBS:+--jobs "$EVAL_JOBS"} "$STUDY_ROOT" $EVAL_FID \
        --which "$EVAL_WHICH" --device "$DEVICE" --data-root "$DATA" >"$STUDY_ROOT/eval.log" 2>&1
    say "evaluation: exit $?"
    tail -n 3 "$STUDY_ROOT/eval.log"
fi

say "export: the records -> $RETURN"
"$PYTHON" scripts/gpu_study.py export "$STUDY_ROOT" "$RETURN" --extra "$plan" "$LOG" \
    "$STUDY_ROOT"/calibration-*/*.log "$STUDY_ROOT"/sweep.log "$STUDY_ROOT"/collapse.log \
    "$STUDY_ROOT"/eval.log
erc=$?
say "done: exit $erc; files: $(cd "$RETURN" && ls | tr '\n' ' ')"
exit $erc
