"""Data-parallel pre-training scaling: N processes (one per GPU) against 1, the same global batch.

    python bench/ddp.py --device cuda --nproc 2 --precision bf16 --d-model 768 --n-layers 16 --n-heads 12 \\
        --batch-size 32 --seq-len 1024 --out bench/results/pretrain_ddp_gpu.json     # 2 GPUs vs 1 (bench/gpu.sh)
    python bench/ddp.py --device cpu --nproc 2 --steps 6 --log-every 2    # the same on CPU cores (gloo): a smoke run
    python bench/ddp.py --device cuda --nproc 2 --parallel fsdp ...       # N processes sharding the model (FSDP2) vs 1

Both sides are the pretrain job as the workflow runs it: `lmforecast pretrain` under
`torchrun --standalone` (training.parallel: ddp, or fsdp with --parallel fsdp, with N processes; none with 1). The global
batch is the same: each of the N processes runs micro-batches of batch_size / N rows, and the
single process accumulates N such micro-batches per step, so both do the same arithmetic on the
same shapes and the ratio is the scaling of the step time. tokens/s is read from the job log
(the loop's cumulative rate at each log line), over the steps between the first and the last
log line, so that start-up and the first steps (allocator, kernel selection) are not counted.
ours = N processes, reference = 1 process, ratio = ours / reference (ideal: N).
"""

import argparse
import datetime
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from device import cpu_name, write_result  # noqa: E402 (bench/device.py, beside this script)
from pretrain import build_data  # noqa: E402 (bench/pretrain.py: the default world's tokenizer and shards)

REPO = Path(__file__).resolve().parents[1]
LINE = re.compile(r"step (\d+)/\d+ loss \S+ lr \S+ (\d+) tok/s \S+ GFLOP/s(?: MFU ([\d.]+)%)?")


def run_job(nproc, spec, shards, tokenizer_dir, out, steps, env):
    """tokens/s between the first and last log lines of a pretrain job on `nproc` processes, and its last MFU."""
    cmd = ["torchrun", "--standalone", "--nproc-per-node", str(nproc), "--no-python", "lmforecast", "pretrain"]
    cmd += ["--spec", json.dumps(spec), "--shards", *map(str, shards.values()), "--tokenizer", str(tokenizer_dir)]
    cmd += ["--step-start", "0", "--step-end", str(steps), "--out", str(out), "--threads", "1"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode:
        sys.exit(f"{' '.join(cmd[:6])}... failed:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}")
    points = [(int(m[1]), int(m[2]), m[3]) for m in LINE.finditer(proc.stdout + proc.stderr)]
    if len(points) < 2:
        sys.exit(f"fewer than two log lines in the job log:\n{proc.stdout[-3000:]}")
    tokens_per_step = spec["training"]["batch_size"] * spec["training"]["seq_len"]
    # The loop logs done * tokens_per_step / elapsed: recover the elapsed time at each line.
    elapsed = [done * tokens_per_step / rate for done, rate, _ in points]
    rate = (points[-1][0] - points[0][0]) * tokens_per_step / (elapsed[-1] - elapsed[0])
    return rate, None if points[-1][2] is None else float(points[-1][2]) / 100


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=str(REPO / "config/config.yaml"))
    ap.add_argument("--size", default="l", help="a size of the config (default l); --d-model etc. override it")
    ap.add_argument("--d-model", type=int)
    ap.add_argument("--n-layers", type=int)
    ap.add_argument("--n-heads", type=int)
    ap.add_argument("--batch-size", type=int, default=8, help="the global batch, in rows")
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--nproc", type=int, default=2)
    ap.add_argument("--parallel", default="ddp", choices=["ddp", "fsdp"], help="training.parallel of the N processes")
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--log-every", type=int, default=10)
    ap.add_argument("--out", default=str(REPO / "bench/results/pretrain_ddp.json"))
    args = ap.parse_args()
    if args.batch_size % args.nproc:
        ap.error(f"--batch-size {args.batch_size} must be a multiple of --nproc {args.nproc}")
    env = dict(os.environ)
    if args.device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
        device = f"cpu: {cpu_name()}, 1 thread per process"
    else:
        import torch

        if torch.cuda.device_count() < args.nproc:
            ap.error(f"--nproc {args.nproc}: torch sees {torch.cuda.device_count()} GPU(s)")
        device = f"cuda: {args.nproc} x {torch.cuda.get_device_name()}"

    config = yaml.safe_load(Path(args.config).read_text())
    size = {
        **config["sizes"][args.size],
        **{k: v for k, v in (("d_model", args.d_model), ("n_layers", args.n_layers), ("n_heads", args.n_heads)) if v is not None},
    }
    micro = args.batch_size // args.nproc
    training = {
        **config["training"],
        "precision": args.precision,
        "checkpoints": 1,
        "batch_size": args.batch_size,
        "seq_len": args.seq_len,
        "log_every": args.log_every,
        "micro_batch_size": micro,
    }
    training.pop("checkpoints_per_segment", None)
    mixture = next(iter(config["mixtures"]))
    run = {
        "name": "bench",
        "size": size,
        "size_name": args.size,
        "tokens": args.steps * args.batch_size * args.seq_len,
        "mixture": config["mixtures"][mixture],
        "mixture_name": mixture,
        "objective": "clm",
        "lr": 1e-3,
        "seed": 0,
        "steps_total": args.steps,
    }
    tmp = Path(tempfile.mkdtemp(prefix="bench_ddp_"))
    try:
        build_data({**config, "training": training}, tmp)
        shards = {p.stem: p for p in sorted(tmp.glob("*.npy"))}
        one = {"run": run, "training": {**training, "parallel": "none"}}
        many = {"run": run, "training": {**training, "parallel": args.parallel}}
        ref, ref_mfu = run_job(1, one, shards, tmp, tmp / "one", args.steps, env)
        ours, ours_mfu = run_job(args.nproc, many, shards, tmp, tmp / "many", args.steps, env)
    finally:
        shutil.rmtree(tmp)
    result = {
        "benchmark": f"data-parallel pre-training ({args.parallel}): {args.nproc} processes vs 1 (accumulating), same global batch",
        "ours": round(ours, 1),
        "reference": round(ref, 1),
        "ratio": round(ours / ref, 3),
        "ideal_ratio": args.nproc,
        "unit": "tokens/s",
        "mfu": {"ours": ours_mfu, "reference": ref_mfu}
        if ours_mfu is not None
        else "not computed (CPU, or a GPU not in lmforecast.train.loop.PEAK_FLOPS)",
        "model": size,
        "global_batch": args.batch_size,
        "micro_batch_size": micro,
        "seq_len": args.seq_len,
        "precision": args.precision,
        "steps": args.steps,
        "device": device,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": "python bench/ddp.py " + " ".join(sys.argv[1:]),
    }
    write_result(result, args.out)


if __name__ == "__main__":
    main()
