#!/usr/bin/env bash
# Build .gpu/, what travels with the working tree to a GPU machine that has Python 3.12,
# torch, numpy, scipy, pandas, pillow, matplotlib, jinja2, tqdm, joblib, pyyaml, filelock and
# tabulate, but no Hydra, no venv and no network, and takes at most LIMIT_MIB of files with
# each command. Run it HERE, where PyPI is reachable, from the repository root (docs/running.md,
# "Running on GPUs and clusters"):
#
#     scripts/gpu_prepare.sh      # then: command 1 carries .gpu/wheels .gpu/mnist .gpu/weights-1
#                                 # (scripts/gpu_check.sh), command 2 .gpu/weights-2
#                                 # (scripts/gpu_study.sh)
#
# .gpu/wheels/  pure-Python wheels (py3-none-any) of what that machine lacks: Hydra, OmegaConf,
#               the ANTLR runtime (an sdist on PyPI: built here with pip wheel), Hydra's joblib
#               launcher, and pytest with its dependencies (for scripts/gpu_check.sh); pinned to
#               the versions the test suite runs against. scripts/gpu_check.sh and
#               scripts/gpu_study.sh install them offline into a folder of their own
#               (python3 scripts/gpu_study.py env).
# .gpu/mnist/   the four MNIST idx files gzipped (gansweep.data reads .gz), each checked
#               against its md5 after a round trip through gzip.
# .gpu/weights-<k>/  the pytorch-fid Inception weights (default_1.pt, 87 MB, sha256-verified;
#               fetched with `gansweep-fid fetch-weights` if missing) in WEIGHTS_PARTS (2)
#               equal parts, each with a SHA256SUMS of itself and of the whole file
#               (scripts/gpu_study.py split); the k-th command carries weights-<k>, and
#               scripts/gpu_study.sh joins them there and checks the sha256 before use.
# .gpu/MANIFEST sha256 and size of every file, and the pins.
# Prints what each command carries: the working tree (tracked and untracked-not-ignored
# files) plus its folders; fails where that exceeds LIMIT_MIB (default 60, under the 64 MiB
# the H100/H200 machines this project used take with a command).
set -euo pipefail
cd "$(dirname "$0")/.."
GPU_DIR=${GPU_DIR:-.gpu}
DATA=${DATA:-data}
LIMIT_MIB=${LIMIT_MIB:-60}
WEIGHTS_PARTS=${WEIGHTS_PARTS:-2}
if [[ -z "${PYTHON:-}" ]]; then  # a python with gansweep importable (the dev venv) and pip
    PYTHON=python3
    [[ -x .venv/bin/python ]] && PYTHON=.venv/bin/python
fi
# the versions the test suite runs against (the dev venv); override to try others
PINS=(
    "hydra-core==${HYDRA_CORE:-1.3.8}"
    "omegaconf==${OMEGACONF:-2.3.1}"
    "hydra-joblib-launcher==${HYDRA_JOBLIB_LAUNCHER:-1.2.0}"
    "pytest==${PYTEST:-9.2.0}" "pluggy==1.7.0" "iniconfig==2.3.1" "pygments==2.21.0"
    "packaging==26.4"
)
ANTLR="antlr4-python3-runtime==4.9.3"  # sdist only: built into a py3-none-any wheel here
stamp="${PINS[*]} $ANTLR"

wheels="$GPU_DIR/wheels"
if [[ -f "$wheels/.pins" && "$(cat "$wheels/.pins")" == "$stamp" ]]; then
    echo "wheels: $wheels already holds: $stamp"
else
    tmp="$GPU_DIR/wheels.tmp"
    rm -rf "$tmp"
    mkdir -p "$tmp"
    echo "wheels: downloading ${PINS[*]}"
    "$PYTHON" -m pip download -q --no-deps --only-binary :all: -d "$tmp" "${PINS[@]}"
    echo "wheels: building $ANTLR"
    "$PYTHON" -m pip wheel -q --no-deps -w "$tmp" "$ANTLR"
    for whl in "$tmp"/*.whl; do  # the target has Python 3.12: only pure wheels travel
        case "$(basename "$whl")" in
            *-py3-none-any.whl|*-py2.py3-none-any.whl) ;;
            *) echo "error: $(basename "$whl") is not a pure-Python wheel" >&2; exit 1 ;;
        esac
    done
    echo "$stamp" >"$tmp/.pins"
    rm -rf "$wheels"
    mv "$tmp" "$wheels"
fi

# MNIST, gzipped (-n: no name or time stamp, so the same bytes every time), then verified
verify() { "$PYTHON" -c "import sys; from gansweep.data.mnist import verify; verify(sys.argv[1])" "$1"; }
if ! verify "$GPU_DIR/mnist" 2>/dev/null; then  # reads the .gz files, as the GPU machine will
    verify "$DATA" 2>/dev/null || "$PYTHON" -m gansweep.data fetch --root "$DATA"
    mkdir -p "$GPU_DIR/mnist"
    for name in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte \
                t10k-labels-idx1-ubyte; do
        if [[ -f "$DATA/$name" ]]; then
            gzip -n -9 -c "$DATA/$name" >"$GPU_DIR/mnist/$name.gz.tmp"
        else
            cp "$DATA/$name.gz" "$GPU_DIR/mnist/$name.gz.tmp"
        fi
        mv "$GPU_DIR/mnist/$name.gz.tmp" "$GPU_DIR/mnist/$name.gz"
    done
    verify "$GPU_DIR/mnist"  # md5 of the raw bytes after the round trip through gzip
fi
echo "mnist: $GPU_DIR/mnist (4 idx files, gzipped, md5 verified)"

"$PYTHON" scripts/gpu_study.py split --into "$GPU_DIR" --parts "$WEIGHTS_PARTS"

(cd "$GPU_DIR" && find wheels mnist weights-* -type f ! -name '.pins' -print0 | sort -z \
    | xargs -0 sha256sum | while read -r sum path; do
        echo "$sum $(stat -c %s "$path") $path"; done) >"$GPU_DIR/MANIFEST"
echo "pins: $stamp" >>"$GPU_DIR/MANIFEST"

tree_bytes=$( (git ls-files -z --cached --others --exclude-standard \
    | xargs -0 -r stat -c %s -- 2>/dev/null || true) | awk '{s += $1} END {print s + 0}')
# (|| true: a tracked file deleted in the tree does not travel, and stat says so)
mib() { awk -v b="$1" 'BEGIN {printf "%.2f MiB", b / 1048576}'; }
over=0
for ((k = 1; k <= WEIGHTS_PARTS; k++)); do  # command k: its folders and the working tree
    carry=("$GPU_DIR/weights-$k")
    ((k == 1)) && carry=("$GPU_DIR/wheels" "$GPU_DIR/mnist" "${carry[@]}")
    bytes=$(du -sbc "${carry[@]}" | tail -n 1 | cut -f1)
    total=$((bytes + tree_bytes))
    echo "carry, command $k: ${carry[*]} $(mib "$bytes") + working tree $(mib "$tree_bytes")" \
         "= $(mib "$total") (limit ${LIMIT_MIB} MiB)"
    ((total > LIMIT_MIB * 1048576)) && over=1
done
if ((over)); then
    echo "error: a command would carry more than ${LIMIT_MIB} MiB. Fix: WEIGHTS_PARTS=$((WEIGHTS_PARTS + 1))" >&2
    exit 1
fi
