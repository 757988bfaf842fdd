#!/usr/bin/env bash
# The GPU benchmarks of issue 22 in one command, on a machine with CUDA torch and the project installed
# (make install, then a CUDA build of torch 2.13 in .venv): writes bench/results/*_gpu.json, each naming the GPU.
#
#   bench/gpu.sh                     # all stages; the multi-GPU ones only if two GPUs are visible
#   bench/gpu.sh pretrain evaluate   # some stages (one device call of at most 10 minutes each, say)
#
#   pretrain  pretrain_gpu.json       tokens/s and MFU of a ~125M-parameter Llama (d 768, 16 layers, 12 heads), bf16,
#                                     batch 32 x 1024 tokens: lmforecast's loop vs a bare PyTorch loop (goal: MFU >= 45%)
#   ddp       pretrain_ddp_gpu.json   the same model on 2 GPUs (training.parallel: ddp under torchrun) vs 1, same global
#                                     batch (goal: ratio >= 1.8)
#   fsdp      pretrain_fsdp_gpu.json  the same with training.parallel: fsdp (the model sharded over the 2 GPUs) vs 1
#   evaluate  evaluate_gpu.json       multiple-choice examples/s vs lm-evaluation-harness's HF backend on the same GPU,
#                                     model (the default config's size l) and task (goal: ratio >= 3, identical accuracy)
#   sft       sft_gpu.json            full-SFT tokens/s of the ~125M model in bf16 vs a bare loop
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
die() { echo "bench/gpu.sh: $*" >&2; exit 1; }
STAGES=("$@")
(( ${#STAGES[@]} )) || STAGES=(pretrain ddp fsdp evaluate sft)
for stage in "${STAGES[@]}"; do
    case $stage in pretrain|ddp|fsdp|evaluate|sft) ;; *) die "unknown stage '$stage': expected pretrain, ddp, fsdp, evaluate or sft" ;; esac
done
"$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" \
    || die "torch sees no CUDA device (a CPU build of torch, or no GPU): these figures need one"
command -v lmforecast >/dev/null && command -v torchrun >/dev/null || die "lmforecast and torchrun must be on PATH (make install)"
export PYTHONPATH=$PWD/workflow${PYTHONPATH:+:$PYTHONPATH}
GPUS=$("$PY" -c "import torch; print(torch.cuda.device_count())")
MODEL=(--d-model 768 --n-layers 16 --n-heads 12)
R=bench/results
for stage in "${STAGES[@]}"; do
    if [[ $stage == ddp || $stage == fsdp ]] && (( GPUS < 2 )); then
        echo "bench/gpu.sh: $GPUS GPU visible: the 2-GPU $stage scaling (pretrain_${stage}_gpu.json) is not measured" >&2
        continue
    fi
    set -x
    case $stage in
    pretrain)
        "$PY" bench/pretrain.py --device cuda --precision bf16 "${MODEL[@]}" --batch-size 32 --seq-len 1024 \
            --reps 5 --warmup 5 --steps 20 --out $R/pretrain_gpu.json ;;
    ddp|fsdp)
        "$PY" bench/ddp.py --device cuda --nproc 2 --parallel "$stage" --precision bf16 "${MODEL[@]}" --batch-size 32 \
            --seq-len 1024 --steps 60 --log-every 10 --out $R/pretrain_${stage}_gpu.json ;;
    evaluate)
        "$PY" bench/evaluate.py --device cuda --reps 5 --lmeval-batch-sizes 64 256 1024 --out $R/evaluate_gpu.json ;;
    sft)
        "$PY" bench/sft.py --device cuda --precision bf16 "${MODEL[@]}" --batch-size 32 --out $R/sft_gpu.json ;;
    esac
    { set +x; } 2>/dev/null
done
