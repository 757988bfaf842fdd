#!/usr/bin/env bash
# The GPU benchmarks of issue 22 in one command, on a machine with CUDA torch and the project installed
# (make install, then a CUDA build of torch 2.13 in .venv): writes bench/results/*_gpu.json, each naming the GPU.
#
#   bench/gpu.sh            # ~15 minutes on one H100/H200; the 2-GPU scaling run only if two GPUs are visible
#
#   1. pretrain_gpu.json      tokens/s and MFU of a ~125M-parameter Llama (d 768, 16 layers, 12 heads), bf16,
#                             batch 32 x 1024 tokens: lmforecast's loop vs a bare PyTorch loop (goal: MFU >= 45%)
#   2. pretrain_ddp_gpu.json  the same model on 2 GPUs (training.parallel: ddp under torchrun) vs 1, same global
#                             batch (goal: ratio >= 1.8)
#   3. evaluate_gpu.json      multiple-choice examples/s vs lm-evaluation-harness's HF backend on the same GPU,
#                             model (the default config's size l) and task (goal: ratio >= 3, identical accuracy)
#   4. sft_gpu.json           full-SFT tokens/s of the ~125M model in bf16 vs a bare loop
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
die() { echo "bench/gpu.sh: $*" >&2; exit 1; }
"$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" \
    || die "torch sees no CUDA device (a CPU build of torch, or no GPU): these figures need one"
command -v lmforecast >/dev/null && command -v torchrun >/dev/null || die "lmforecast and torchrun must be on PATH (make install)"
export PYTHONPATH=$PWD/workflow${PYTHONPATH:+:$PYTHONPATH}
GPUS=$("$PY" -c "import torch; print(torch.cuda.device_count())")
MODEL=(--d-model 768 --n-layers 16 --n-heads 12)
R=bench/results
set -x
"$PY" bench/pretrain.py --device cuda --precision bf16 "${MODEL[@]}" --batch-size 32 --seq-len 1024 \
    --reps 5 --warmup 5 --steps 20 --out $R/pretrain_gpu.json
if (( GPUS >= 2 )); then
    "$PY" bench/ddp.py --device cuda --nproc 2 --precision bf16 "${MODEL[@]}" --batch-size 32 --seq-len 1024 \
        --steps 60 --log-every 10 --out $R/pretrain_ddp_gpu.json
else
    set +x; echo "bench/gpu.sh: 1 GPU visible: the 2-GPU scaling (pretrain_ddp_gpu.json) is not measured" >&2; set -x
fi
"$PY" bench/evaluate.py --device cuda --reps 5 --lmeval-batch-sizes 64 256 1024 --out $R/evaluate_gpu.json
"$PY" bench/sft.py --device cuda --precision bf16 "${MODEL[@]}" --batch-size 32 --out $R/sft_gpu.json
