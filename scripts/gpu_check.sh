#!/usr/bin/env bash
# The GPU checks in one go (about 10 minutes on one modern GPU; written on a CPU-only
# machine, not yet run on a GPU). Run from the repository root after `make setup` and
# `make data`:
#
#     scripts/gpu_check.sh [OUT_DIR]          # default outputs/gpu_check/<time>
#     SEED_MINUTES=20 scripts/gpu_check.sh    # a longer capped seed_standard run
#
# 1. the `gpu` tests, then the trainer and fault-injection tests (kill -9 and SIGTERM, then
#    resume, compared bit for bit with an uninterrupted run) on CUDA in deterministic mode
# 2. gansweep-bench on CUDA, both model.impl values (+ Inception and LeNet throughput)
# 3. Inception reference-statistics speed estimate on CUDA
# 4. +experiment=seed_standard on CUDA for SEED_MINUTES minutes, stopped by SIGTERM, then
#    resumed for one more minute: its checkpoint and resume on a real preset
# Every step's output goes to OUT_DIR; the last lines printed summarise them.
set -uo pipefail
OUT=${1:-outputs/gpu_check/$(date +%Y-%m-%d_%H-%M-%S)}
DATA=${DATA:-data}
VENV=${VENV:-.venv}
SEED_MINUTES=${SEED_MINUTES:-4}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
export GANSWEEP_TEST_DATA=$(cd "$DATA" && pwd)
status=()
step() {  # step NAME COMMAND...: run, log to OUT/NAME.log, remember the exit status
    local name=$1; shift
    echo "== $name: $*"
    "$@" >"$OUT/$name.log" 2>&1
    local rc=$?
    status+=("$name: exit $rc")
    tail -n 15 "$OUT/$name.log"
}

"$VENV/bin/python" - <<'EOF' | tee "$OUT/environment.txt" || exit 1
import sys, torch
print("torch", torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version())
if not torch.cuda.is_available():
    sys.exit("no CUDA device visible: nothing to check")
for i in range(torch.cuda.device_count()):
    print(f"cuda:{i}", torch.cuda.get_device_name(i))
EOF

step tests_gpu "$VENV/bin/python" -m pytest -q -m gpu tests
step tests_on_cuda env GANSWEEP_TEST_DEVICE=cuda "$VENV/bin/python" -m pytest -q \
    tests/test_trainer.py tests/test_reliability.py
step bench "$VENV/bin/gansweep-bench" --device cuda --steps 50 --warmup 10 --no-rss \
    --data-root "$DATA" --json "$OUT/bench.json"
step inception_estimate "$VENV/bin/gansweep-fid" ref --extractor inception --device cuda \
    --root "$DATA" --estimate-only
seed=("$VENV/bin/gansweep-train" +experiment=seed_standard trainer.device=cuda
      trainer.log_every=50 dataset.root="$DATA" hydra.run.dir="$OUT/seed_standard")
step seed_standard timeout --signal=TERM "${SEED_MINUTES}m" "${seed[@]}"
step seed_standard_resume timeout --signal=TERM 1m "${seed[@]}"

echo
echo "== summary ($OUT)"
printf '%s\n' "${status[@]}"
"$VENV/bin/python" - "$OUT" <<'EOF'
import json, pathlib, statistics, sys
out = pathlib.Path(sys.argv[1])
bench = json.loads((out / "bench.json").read_text()) if (out / "bench.json").exists() else {}
for key, row in bench.get("results", {}).items():
    print(f"bench {key}: {row['median_s'] * 1e3:.2f} ms/step, loop {row['loop_s_per_step'] * 1e3:.2f} ms/step")
if bench:
    print("bench peak CUDA memory (MB):", bench.get("max_memory_allocated_mb"),
          "| FID features:", {k: v.get("images_per_s") for k, v in bench.get("fid_features", {}).items()})
run = out / "seed_standard"
if (run / "summary.json").exists():
    summary = json.loads((run / "summary.json").read_text())
    rows = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines() if '"d_loss"' in l]
    print("seed_standard:", summary["status"], summary["batches_done"], "batches,",
          summary["wall_seconds"], "s,", summary.get("precision"),
          "| last d_loss/g_loss:", rows[-1]["d_loss"] if rows else None, rows[-1]["g_loss"] if rows else None)
    print("resumed:", "resumed from" in (run / "train.log").read_text())
EOF
