"""Pre-training throughput: lmforecast's training loop vs a bare PyTorch loop over the same model.

    python bench/pretrain.py        # CPU, 1 thread, size l of config/config.yaml, batch 8 x seq 128; ~3 minutes
    python bench/pretrain.py --device cuda --precision bf16 --d-model 2048 --n-layers 24 --n-heads 16 \\
        --batch-size 8 --seq-len 2048 --out bench/results/pretrain_gpu.json    # tokens/s and MFU on a GPU (not run yet)

Ours is `lmforecast.train.train_segment` as a pretrain job runs it (accelerate, the mixture
sampler and the objective's batch maker, the schedule, SIGTERM checks, loss bookkeeping),
timed between its log lines after a warm-up (model set-up and the checkpoint write are not
timed). The reference is a bare loop written here: the same Llama (same init), the same
batches (made before its clock starts, already on the device), AdamW, cross-entropy,
gradient clipping, with autocast for bf16 and torch's default (non-deterministic)
algorithms; ours runs with torch.use_deterministic_algorithms(True), as the jobs do.
Many short repeats alternate ours and the reference (ABBA order) so machine noise hits both
alike; the ratio is median over median (wall clock). Tokens per second of process CPU time
are recorded too: on a shared machine they vary less than wall-clock figures.

MFU (on CUDA only) = tokens/s x FLOPs per token (lmforecast.train.model.flops_per_token: 6N with
the output head, + 12 L d T) / the device's peak dense FLOP/s for the precision (a table
below, or --peak-tflops). The accelerate start-up a job pays (importing accelerate and
building the Accelerator, in a fresh process after torch) is measured too.
"""

import argparse
import datetime
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):  # as the jobs (lmforecast/cli.py)
    os.environ.setdefault(_var, "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np
import torch
import torch.nn.functional as F
import yaml
from device import cpu_name, write_result  # noqa: E402 (bench/device.py, beside this script)

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow"))

from lmforecast.data import tokenizer as tokenizer_lib  # noqa: E402
from lmforecast.data.shards import encode_documents, get_batch, load_shards  # noqa: E402
from lmforecast.data.world import DOMAINS, domain_documents  # noqa: E402
from lmforecast.settings import Pretrain, World  # noqa: E402
from lmforecast.train.loop import model_config, train_segment  # noqa: E402
from lmforecast.train.model import Llama, flops_per_token, n_params  # noqa: E402

# Peak dense tensor-core FLOP/s by device name and precision (vendor data sheets; SXM parts).
# fp32 is the plain (non-TF32) rate: torch keeps TF32 off for float32 matmuls by default.
PEAK_FLOPS = {
    "H200": {"bf16": 989e12, "fp32": 67e12},
    "H100": {"bf16": 989e12, "fp32": 67e12},
    "A100": {"bf16": 312e12, "fp32": 19.5e12},
}


def build_data(config, directory):
    """The default world's tokenizer and per-domain token shards, as the data stage makes them."""
    world = World.from_dict(config["world"])
    docs = {d: domain_documents(world, d, "train") for d in DOMAINS}
    tok = tokenizer_lib.train_tokenizer(
        [x for d in DOMAINS for x in docs[d]], config["tokenizer"]["vocab_size"], config["tokenizer"]["sentinels"]
    )
    tokenizer_lib.save_hf(tok, directory, model_max_length=config["training"]["seq_len"])
    shards = {}
    for d in DOMAINS:
        shards[d] = directory / f"{d}.npy"
        np.save(shards[d], encode_documents(tok, docs[d], tokenizer_lib.eos_id(tok)))
    return tok, shards


def clocks():
    return np.array([time.perf_counter(), time.process_time()])


def time_ours(run, training, shards, tokenizer_dir, out, warmup, steps):
    """tokens/s (wall clock, process CPU time) of train_segment's steps warmup+1 .. warmup+steps, timed between its log lines."""
    stamps = []
    spec = Pretrain.from_dict({"run": run, "training": {**training, "log_every": warmup}})
    train_segment(
        spec,
        0,
        warmup + steps,
        shards,
        tokenizer_dir,
        None,
        out,
        log=lambda m: stamps.append(clocks()) if m.startswith("step ") else None,
    )
    assert len(stamps) == 1 + steps // warmup, stamps
    return steps * training["batch_size"] * training["seq_len"] / (stamps[-1] - stamps[0])


def time_reference(cfg, run, training, shards, device, warmup, steps):
    """tokens/s (wall clock, process CPU time) of a bare loop: forward, cross-entropy, backward, clip, AdamW.

    Its batches are ours (the mixture sampler's rows for the same steps), made before the clock starts and on the device.
    """
    torch.use_deterministic_algorithms(False)  # torch's default; ours turns it on
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    torch.manual_seed(run["seed"])
    model = Llama(cfg).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=run["lr"], betas=(0.9, 0.95), eps=1e-8, weight_decay=training["weight_decay"])
    data = load_shards(shards)
    batches = torch.stack(
        [
            get_batch(data, run["mixture"], run["seed"], step, training["batch_size"], training["seq_len"])[0]
            for step in range(warmup + steps)
        ]
    ).to(device)
    bf16 = training["precision"] == "bf16"
    model.train()
    for step in range(warmup + steps):
        if step == warmup:
            sync()
            start = clocks()
        batch = batches[step]
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            logits = model(batch[:, :-1])
        loss = F.cross_entropy(logits.float().view(-1, logits.size(-1)), batch[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), training["grad_clip"])
        opt.step()
    loss.item()  # waits for the device
    return steps * training["batch_size"] * training["seq_len"] / (clocks() - start)


def accelerate_startup(reps):
    """Seconds a job spends importing accelerate and building its Accelerator (fresh process, torch already imported)."""
    code = (
        "import time, torch; t = time.perf_counter(); from accelerate import Accelerator; Accelerator(); "
        "print(time.perf_counter() - t)"
    )
    return [
        float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
        for _ in range(reps)
    ]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=str(REPO / "config/config.yaml"))
    ap.add_argument("--size", default="l", help="a size of the config (default l); --d-model etc. override it")
    ap.add_argument("--d-model", type=int)
    ap.add_argument("--n-layers", type=int)
    ap.add_argument("--n-heads", type=int)
    ap.add_argument("--batch-size", type=int, help="default: the config's training.batch_size")
    ap.add_argument("--seq-len", type=int, help="default: the config's training.seq_len")
    ap.add_argument("--objective", default="clm")
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=21)
    ap.add_argument("--warmup", type=int, default=5, help="untimed steps before each timed run")
    ap.add_argument("--steps", type=int, default=15, help="timed steps per run (a multiple of --warmup)")
    ap.add_argument("--peak-tflops", type=float, help="the device's peak dense TFLOP/s (default: the table in this script)")
    ap.add_argument("--out", default=str(REPO / "bench/results/pretrain.json"))
    args = ap.parse_args()
    if args.steps % args.warmup:
        ap.error(f"--steps ({args.steps}) must be a multiple of --warmup ({args.warmup})")
    if args.device == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda: torch sees no CUDA device")
    if args.device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""  # accelerate would otherwise pick a GPU for ours
    torch.set_num_threads(args.threads)

    config = yaml.safe_load(Path(args.config).read_text())
    size = {
        **config["sizes"][args.size],
        **{k: v for k, v in (("d_model", args.d_model), ("n_layers", args.n_layers), ("n_heads", args.n_heads)) if v is not None},
    }
    training = {**config["training"], "precision": args.precision, "checkpoints": 1}
    training["batch_size"] = args.batch_size or training["batch_size"]
    training["seq_len"] = args.seq_len or training["seq_len"]
    steps_total = args.warmup + args.steps
    mixture = next(iter(config["mixtures"]))
    run = {
        "name": "bench",
        "size": size,
        "size_name": args.size,
        "tokens": steps_total * training["batch_size"] * training["seq_len"],
        "mixture": config["mixtures"][mixture],
        "mixture_name": mixture,
        "objective": args.objective,
        "lr": 1e-3,
        "seed": 0,
        "steps_total": steps_total,
    }

    tmp = Path(tempfile.mkdtemp(prefix="bench_pretrain_"))
    tok, shards = build_data({**config, "training": training}, tmp)
    spec = Pretrain.from_dict({"run": run, "training": training})
    cfg = model_config(spec.run, spec.training, tok.get_vocab_size(), tokenizer_lib.eos_id(tok))
    device = torch.device(args.device)

    times = {"ours": [], "reference": []}  # per rep: (wall-clock, CPU-time) tokens/s
    timers = {
        "ours": lambda rep: time_ours(run, training, shards, tmp, tmp / f"ours{rep}", args.warmup, args.steps),
        "reference": lambda rep: time_reference(cfg, run, training, shards, device, args.warmup, args.steps),
    }
    for rep in range(args.reps):
        for name in ("ours", "reference") if rep % 2 == 0 else ("reference", "ours"):  # ABBA: neither always goes first
            times[name].append(timers[name](rep))
        print(
            f"rep {rep + 1}/{args.reps}: ours {times['ours'][-1][0]:.0f} tok/s, reference {times['reference'][-1][0]:.0f} tok/s",
            flush=True,
        )
    startup = accelerate_startup(5)

    wall = {k: [t[0] for t in v] for k, v in times.items()}
    cpu = {k: [t[1] for t in v] for k, v in times.items()}
    ours, ref = statistics.median(wall["ours"]), statistics.median(wall["reference"])
    fpt = flops_per_token(cfg)
    if args.device == "cuda":
        name = torch.cuda.get_device_name()
        peak = (
            args.peak_tflops * 1e12
            if args.peak_tflops
            else next((v[args.precision] for k, v in PEAK_FLOPS.items() if k in name), None)
        )
        device_desc = f"cuda: {name}"
        mfu = (
            {"ours": ours * fpt / peak, "reference": ref * fpt / peak, "peak_flops": peak}
            if peak
            else "not computed: device not in PEAK_FLOPS; pass --peak-tflops"
        )
    else:
        device_desc = f"cpu: {cpu_name()}, {args.threads} thread{'s' if args.threads > 1 else ''}"
        mfu = "not measured: this run was on the CPU (MFU is computed with --device cuda; no GPU run is recorded in this file)"
    result = {
        "benchmark": "pre-training throughput: lmforecast train_segment vs a bare PyTorch loop, same model, batch and sequence",
        "ours": round(ours, 1),
        "reference": round(ref, 1),
        "ratio": round(ours / ref, 3),
        "unit": "tokens/s",
        "tokens_per_second": {k: [round(x, 1) for x in v] for k, v in wall.items()},
        "paired_ratio_median": round(statistics.median(o / r for o, r in zip(wall["ours"], wall["reference"])), 3),
        "cpu_time": {
            "what": "tokens per second of process CPU time (less sensitive than wall clock to other jobs on a shared machine)",
            "ours": round(statistics.median(cpu["ours"]), 1),
            "reference": round(statistics.median(cpu["reference"]), 1),
            "ratio": round(statistics.median(cpu["ours"]) / statistics.median(cpu["reference"]), 3),
        },
        "reps": args.reps,
        "steps_per_rep": {"warmup": args.warmup, "timed": args.steps},
        "model": {**size, "vocab_size": cfg.vocab_size, **n_params(cfg), "flops_per_token": fpt},
        "batch_size": training["batch_size"],
        "seq_len": training["seq_len"],
        "objective": args.objective,
        "precision": args.precision,
        "mfu": mfu,
        "accelerate_startup_seconds": {
            "median": round(statistics.median(startup), 3),
            "all": [round(x, 3) for x in startup],
            "what": "import accelerate + Accelerator() in a fresh process after torch, once per pretrain job",
        },
        "device": device_desc,
        "versions": {
            "torch": torch.__version__,
            "accelerate": __import__("accelerate").__version__,
            "python": platform.python_version(),
        },
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": "python bench/pretrain.py " + " ".join(sys.argv[1:]),
    }
    write_result(result, args.out)
    shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
