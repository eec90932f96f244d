#!/usr/bin/env bash
# The seed study's table on one GPU within a wall-clock budget: the seven seed presets side by
# side on the card (Hydra's joblib launcher, one process per run, all on cuda:0), fid=lenet
# in training, then each run's evaluation samples brought back for Inception FID here
# (python -m gansweep.gpu_study score). Written for an offline GPU node (system python3 with
# torch, no Hydra, no venv, no network; .gpu/ copied beside the tree: scripts/gpu_prepare.sh)
# and rehearsed on CPU by tests/test_gpu_scripts.py. Run from the repository root:
#
#     scripts/gpu_study.sh [RETURN_DIR]    # default $OUT (a folder to bring back from the
#                                          # node) where set, else outputs/gpu_study/return
#
# Settings (environment):
#   STUDY_SECONDS=360  the whole script's wall-clock budget, start to files written
#   EPOCHS=auto        auto: a 1-epoch calibration sweep (fid=none) measures the runs side by
#                      side, then the study gets the epochs that fit (gansweep.gpu_study plan,
#                      at most MAX_EPOCHS=100); or a number (no calibration). The plan is kept
#                      in STUDY_ROOT/plan.json: the same command again resumes the same runs
#                      (rm -r STUDY_ROOT for a new plan)
#   PRESETS='glob(seed_*)'  (the seven; e.g. seed_standard,seed_coulomb_1 for two runs at more
#                      epochs)  SEEDS=0  DEVICE=cuda  N_JOBS=7  LOG_EVERY=100  SAMPLE_EVERY=468
#   STUDY_OVERRIDES    more Hydra overrides for both sweeps (e.g. trainer.tf32=true)
#   STUDY_ROOT=outputs/gpu_study  DATA=.gpu/mnist (else data)  PYTHON=python3 (or .venv's)
#   EXPORT_SECONDS=60  kept after training for the export (the sweep is stopped by SIGTERM
#                      then: its runs checkpoint, and are exported as interrupted)
# Returns (<= 8 files, each < 16 MiB): samples.npz (uint8 levels of each run's 3000 samples),
# manifest.json, study.tar.gz (the sweep without checkpoints: table, montage, summaries,
# metrics, final grids; plan and logs), study.txt, table.md and montage.png.
set -uo pipefail
cd "$(dirname "$0")/.."
START=$(date +%s)
STUDY_SECONDS=${STUDY_SECONDS:-360}
DEADLINE=$((START + STUDY_SECONDS))
EPOCHS=${EPOCHS:-auto}
MAX_EPOCHS=${MAX_EPOCHS:-100}
DEVICE=${DEVICE:-cuda}
PRESETS=${PRESETS:-glob(seed_*)}
SEEDS=${SEEDS:-0}
N_JOBS=${N_JOBS:-7}
LOG_EVERY=${LOG_EVERY:-100}
SAMPLE_EVERY=${SAMPLE_EVERY:-468}
EXPORT_SECONDS=${EXPORT_SECONDS:-60}
STUDY_ROOT=${STUDY_ROOT:-outputs/gpu_study}
RETURN=${1:-${OUT:-$STUDY_ROOT/return}}
. scripts/gpu_common.sh  # PYTHON and DATA
mkdir -p "$STUDY_ROOT" "$RETURN"
STUDY_ROOT=$(cd "$STUDY_ROOT" && pwd)
RETURN=$(cd "$RETURN" && pwd)
DATA=$(cd "$DATA" && pwd)
LOG="$STUDY_ROOT/study.log"
say() { echo "[study +$(($(date +%s) - START))s] $*" | tee -a "$LOG"; }
fail() {  # the logs come back instead of the study
    say "error: $*"
    for f in "$LOG" "$STUDY_ROOT"/calibration.log "$STUDY_ROOT"/sweep.log; do
        [[ -f "$f" ]] && cp "$f" "$RETURN/" && tail -n 25 "$f"
    done
    exit 1
}

shell=$("$PYTHON" -m gansweep.gpu_study env) || fail "the environment (above)"
eval "$shell"
trap '[[ -n "${GANSWEEP_CONF_LINK:-}" ]] && rm -f "$GANSWEEP_CONF_LINK"' EXIT
say "python $("$PYTHON" -c 'import sys, torch; print(sys.version.split()[0], "torch", torch.__version__,
    "cuda", torch.version.cuda, "| GPUs:", [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())])')"

# shellcheck disable=SC2206  # STUDY_OVERRIDES: words, as on a command line
common=(-m "+experiment=$PRESETS" "seed=$SEEDS" hydra/launcher=joblib
        "hydra.launcher.n_jobs=$N_JOBS" "trainer.device=$DEVICE" "trainer.log_every=$LOG_EVERY"
        "trainer.sample_every=$SAMPLE_EVERY" trainer.progress=lines "dataset.root=$DATA"
        dataset.fetch=false fid.fetch=false ${STUDY_OVERRIDES:-})
left() { echo $((DEADLINE - $(date +%s))); }

plan="$STUDY_ROOT/plan.json"
if [[ "$EPOCHS" == auto && -f "$plan" ]]; then
    EPOCHS=$("$PYTHON" -c 'import json, sys; print(json.load(open(sys.argv[1]))["epochs"])' "$plan")
    say "plan.json from an earlier launch: $EPOCHS epochs (the same runs resume)"
elif [[ "$EPOCHS" == auto ]]; then
    say "calibration: 1 epoch of each run side by side, fid=none"
    t0=$(date +%s)
    timeout --signal=TERM --kill-after=20 $(($(left) / 2)) "$PYTHON" -m gansweep.train \
        "${common[@]}" fid=none trainer.epochs=1 "hydra.sweep.dir=$STUDY_ROOT/calibration" \
        >"$STUDY_ROOT/calibration.log" 2>&1
    say "calibration: exit $? after $(($(date +%s) - t0)) s"
    "$PYTHON" -m gansweep.gpu_study plan "$STUDY_ROOT/calibration" --out "$plan" \
        --launch-seconds $(($(date +%s) - t0)) --deadline "$DEADLINE" \
        --reserve $((EXPORT_SECONDS + 20)) --max-epochs "$MAX_EPOCHS" 2>&1 | tee -a "$LOG"
    [[ -f "$plan" ]] || fail "no plan: the calibration did not finish (calibration.log)"
    EPOCHS=$("$PYTHON" -c 'import json, sys; print(json.load(open(sys.argv[1]))["epochs"])' "$plan")
fi

budget=$(($(left) - EXPORT_SECONDS))
((budget >= 30)) || fail "only $budget s left for the study (raise STUDY_SECONDS)"
say "study: $EPOCHS epochs per run, $budget s before it is stopped"
timeout --signal=TERM --kill-after=30 "$budget" "$PYTHON" -m gansweep.train "${common[@]}" \
    "trainer.epochs=$EPOCHS" "hydra.sweep.dir=$STUDY_ROOT/sweep" >"$STUDY_ROOT/sweep.log" 2>&1
rc=$?
say "study: exit $rc$([[ $rc == 124 ]] && echo ' (stopped at the time limit: runs checkpointed, exported as interrupted)')"
tail -n 5 "$STUDY_ROOT/sweep.log"

say "export: samples of each run's final G -> $RETURN"
"$PYTHON" -m gansweep.gpu_study export "$STUDY_ROOT/sweep" "$RETURN" \
    --extra "$plan" "$LOG" "$STUDY_ROOT/calibration.log" "$STUDY_ROOT/sweep.log"
erc=$?
say "done: exit $erc; files: $(cd "$RETURN" && ls | tr '\n' ' ')"
ls -l "$RETURN"
exit $erc
