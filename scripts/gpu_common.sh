# Sourced by scripts/gpu_check.sh and scripts/gpu_study.sh: the interpreter and the data.
# On the GPU node: its system python3 and the MNIST copied in .gpu/ (scripts/gpu_prepare.sh);
# on a development machine: the project's .venv and data/, unless PYTHON or DATA say otherwise.
if [[ -z "${PYTHON:-}" ]]; then
    PYTHON=python3
    [[ -x .venv/bin/python ]] && PYTHON=.venv/bin/python
fi
if [[ -z "${DATA:-}" ]]; then
    DATA=data
    [[ -d .gpu/mnist ]] && DATA=.gpu/mnist
fi
