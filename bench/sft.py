"""SFT throughput: lmforecast's fine_tune vs a bare PyTorch loop over the same model and batches.

    python bench/sft.py --device cuda --precision bf16 --d-model 768 --n-layers 16 --n-heads 12 \\
        --out bench/results/sft_gpu.json                        # a ~125M Llama on a GPU (bench/gpu.sh)
    python bench/sft.py --steps 20 --warmup 20 --out /tmp/sft.json    # CPU smoke run

Ours is `lmforecast.measure.sft.fine_tune` (full fine-tuning) as an sft job runs it, timed between
its log lines (every 20 steps, each one a device sync) after a warm-up. The reference is a bare loop
written here: the same model (same init), the same padded batches (made before its clock starts,
already on the device), the same masked cross-entropy, clipping and AdamW, bf16 autocast alike.
Tokens are the batches' real (unpadded) tokens; the task is fact_qa of the default world, in its
first prompt's zero-shot format, as SFT trains on it. ratio = ours / reference (1.0: no overhead).
"""

import argparse
import datetime
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from device import cpu_name, write_result  # noqa: E402 (bench/device.py, beside this script)

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow"))

from lmforecast.data import tokenizer as tokenizer_lib  # noqa: E402
from lmforecast.data.world import DOMAINS, domain_documents, task_examples  # noqa: E402
from lmforecast.measure.lm import LlamaLM  # noqa: E402
from lmforecast.measure.sft import fine_tune, sft_batches  # noqa: E402
from lmforecast.measure.tasks import load_task  # noqa: E402
from lmforecast.settings import Sft, World  # noqa: E402
from lmforecast.train.model import Llama, ModelConfig, n_params  # noqa: E402


def batch_indices(n_data, batch_size, seed, steps):
    """The rows fine_tune draws at each step (the same generator and arguments)."""
    return [np.random.default_rng([seed, s]).choice(n_data, size=min(batch_size, n_data), replace=False) for s in range(steps)]


def reference(model, data, cfg, device, bf16, idx_per_step, warmup):
    """tokens/s of a bare loop over fine_tune's batches, made on the device before the clock starts."""
    batches = []
    for idx in idx_per_step:
        width = max(len(data[i][0]) for i in idx)
        ids = torch.zeros(len(idx), width, dtype=torch.long)
        mask = torch.zeros(len(idx), width, dtype=torch.bool)
        for r, i in enumerate(idx):
            ids[r, : len(data[i][0])] = torch.tensor(data[i][0])
            mask[r, : len(data[i][1])] = torch.tensor(data[i][1], dtype=torch.bool)
        batches.append((ids.to(device), mask.to(device)))
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.0)
    model.train()
    for step, (ids, mask) in enumerate(batches):
        if step == warmup:
            sync(device)
            start = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            logits = model(ids[:, :-1])
        losses = F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), ids[:, 1:].reshape(-1), reduction="none")
        loss = losses[mask[:, 1:].reshape(-1)].mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    sync(device)
    return tokens(data, idx_per_step[warmup:]) / (time.perf_counter() - start)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def tokens(data, idx_per_step):
    return sum(len(data[i][0]) for idx in idx_per_step for i in idx)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=str(REPO / "config/config.yaml"))
    ap.add_argument("--size", default="l")
    ap.add_argument("--d-model", type=int)
    ap.add_argument("--n-layers", type=int)
    ap.add_argument("--n-heads", type=int)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--warmup", type=int, default=20, help="untimed steps (fine_tune logs every 20)")
    ap.add_argument("--steps", type=int, default=100, help="timed steps, a multiple of 20")
    ap.add_argument("--out", default=str(REPO / "bench/results/sft.json"))
    args = ap.parse_args()
    if args.steps % 20 or args.warmup % 20:
        ap.error("--steps and --warmup must be multiples of 20 (fine_tune's log interval)")
    if args.device == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda: torch sees no CUDA device")
    device = torch.device(args.device)

    config = yaml.safe_load(Path(args.config).read_text())
    world = World.from_dict(config["world"])
    tok = tokenizer_lib.train_tokenizer(
        [x for d in DOMAINS for x in domain_documents(world, d, "train")],
        config["tokenizer"]["vocab_size"],
        config["tokenizer"]["sentinels"],
    )
    size = {
        **config["sizes"][args.size],
        **{k: v for k, v in (("d_model", args.d_model), ("n_layers", args.n_layers), ("n_heads", args.n_heads)) if v is not None},
    }
    mcfg = ModelConfig(**size, vocab_size=tok.get_vocab_size(), seq_len=config["training"]["seq_len"], eos_token_id=0)
    task = load_task(REPO / "resources/tasks/fact_qa.yaml")
    steps = args.warmup + args.steps
    sft = {"tasks": ["fact_qa"], "checkpoints": "last", "methods": ["full"], "multitask": False, "steps": steps}
    cfg = Sft.from_dict(
        {**sft, "batch_size": args.batch_size, "lr": 1e-4, "seed": 0, "examples_per_task": 1, "precision": args.precision}
    )

    def fresh():
        torch.manual_seed(0)
        return LlamaLM(Llama(mcfg), tok).place() if args.device == "cuda" else LlamaLM(Llama(mcfg), tok)

    lm = fresh()
    data = sft_batches(lm, task, task_examples(world, "fact_qa"), next(iter(task.prompts)))
    idx = batch_indices(len(data), cfg.batch_size, cfg.seed, steps)

    stamps = []
    fine_tune(lm.model, data, cfg, cfg.seed, log=lambda m: stamps.append(time.perf_counter()))
    ours = tokens(data, idx[args.warmup :]) / (stamps[-1] - stamps[args.warmup // 20 - 1])
    ref = reference(fresh().model, data, cfg, device, args.precision == "bf16", idx, args.warmup)

    result = {
        "benchmark": "SFT throughput (full fine-tuning): lmforecast fine_tune vs a bare PyTorch loop, same model and batches",
        "ours": round(ours, 1),
        "reference": round(ref, 1),
        "ratio": round(ours / ref, 3),
        "unit": "tokens/s (real tokens, padding excluded)",
        "model": {**size, "vocab_size": mcfg.vocab_size, **n_params(mcfg)},
        "batch_size": args.batch_size,
        "steps": {"warmup": args.warmup, "timed": args.steps},
        "precision": args.precision,
        "device": f"cuda: {torch.cuda.get_device_name()}" if args.device == "cuda" else f"cpu: {cpu_name()}",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": "python bench/sft.py " + " ".join(sys.argv[1:]),
    }
    write_result(result, args.out)


if __name__ == "__main__":
    main()
