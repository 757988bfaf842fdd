"""Pre-training, one segment at a time.

A run is a chain of segments; the segment ending at step s resumes from the checkpoint
at the previous segment's end (model + optimizer state) and writes a checkpoint at s, and
one at each of its `save_steps` (inside its directory, as step{k}/: a segment of several
checkpoints is one job, which a sweep of thousands of runs needs to keep its job count down).
Batches and the objective's masks are pure functions of (seed, step) and there is no
dropout, so a resumed segment gives the same weights as an uninterrupted run. The
checkpoint directory is written under a temporary name and renamed when complete. On
SIGTERM (as Slurm sends at its time limit) the segment stops at the end of the current
step and writes nothing; a SIGTERM that arrives while the checkpoint is being written
lets the write finish. Either way no checkpoint that looks finished is ever incomplete,
and rerunning the segment gives the weights of an uninterrupted run.

Device placement and mixed precision are accelerate's (`training.precision`): the model
trains on the GPU when there is one, else on the CPU. fp32 (the default) is plain float32
arithmetic, bit-identical to a loop without accelerate; bf16 is autocast to bfloat16 with
float32 master weights and optimizer state (on a CPU too, through torch's CPU autocast:
slow there, but the same code path, so it can be tested without a GPU).
"""

import math
import os
import shutil
import signal
import threading
import time
from collections import deque
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

import torch
import torch.nn.functional as F

from lmforecast.data import tokenizer as tokenizer_lib
from lmforecast.data.shards import get_batch, load_shards
from lmforecast.io import atomic_dir, read_json, write_json
from lmforecast.settings import Pretrain, Run, Training
from lmforecast.train import objectives
from lmforecast.train.checkpoint import CheckpointError, verify, write_manifest
from lmforecast.train.model import Llama, ModelConfig, flops_per_token, load_model, n_params, save_model

RESUME_STATE = "resume.pt"
TRAINER_STATE = "trainer_state.json"
PRECISIONS = {"fp32": "no", "bf16": "bf16"}  # training.precision -> accelerate's mixed_precision

# cuBLAS is deterministic only with a fixed workspace (torch.use_deterministic_algorithms
# raises without it); must be set before CUDA starts.
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


def model_config(run: Run, training: Training, vocab_size: int, eos: int) -> ModelConfig:
    return ModelConfig(**asdict(run.size), vocab_size=vocab_size, seq_len=training.seq_len, eos_token_id=eos)


def lr_at(step: int, total: int, peak: float, training: Training) -> float:
    """Learning rate of `step` of `total`: linear warmup to `peak`, then the schedule down to min_lr_frac * peak.

    cosine: cosine decay over all steps after the warmup.
    wsd (warmup-stable-decay): constant at the peak, then decay over the last decay_frac of
    the steps, linear or "1-sqrt" (lr falls as 1 - sqrt(progress), Hägele et al. 2024).
    """
    warmup = max(1, round(training.warmup_frac * total))
    floor = training.min_lr_frac
    if step < warmup:
        return peak * (step + 1) / warmup
    if training.schedule == "cosine":
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return peak * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress)))
    decay_start = total - round(training.decay_frac * total)
    if step < decay_start:
        return peak
    progress = min(1.0, (step - decay_start) / max(1, total - decay_start))
    left = 1 - (math.sqrt(progress) if training.decay_shape == "1-sqrt" else progress)
    return peak * (floor + (1 - floor) * left)


class Terminated(Exception):
    """SIGTERM arrived during training: the segment was abandoned and nothing written."""


@contextmanager
def stop_on_sigterm():
    """Yield a flag set by SIGTERM (checked by the training loop at step boundaries)."""
    if threading.current_thread() is not threading.main_thread():
        yield threading.Event()  # signal handlers can only be set from the main thread
        return
    flag = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: flag.set())
    try:
        yield flag
    finally:
        signal.signal(signal.SIGTERM, previous)


def make_optimizer(model, lr, weight_decay):
    # Decay matrices only, as in nanoGPT; the tied embedding is one parameter. foreach: one
    # kernel call per step for all tensors, not a Python loop over them (torch's default only on
    # GPUs); the same bits as the loop on the CPU (checked against checkpoints written before).
    params = {id(p): p for p in model.parameters()}.values()
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.95), eps=1e-8, foreach=True)


def make_accelerator(training: Training):
    """accelerate's Accelerator for training.precision (GPU if there is one, else CPU)."""
    from accelerate import Accelerator  # ~0.2 s of imports, only in the jobs that train
    from accelerate.state import AcceleratorState

    # accelerate keeps its state in a process-wide singleton that refuses a second precision;
    # a job trains one segment, but tests and the benchmark train several in one process.
    AcceleratorState._reset_state(reset_partial_state=True)
    return Accelerator(mixed_precision=PRECISIONS[training.precision])


def train_segment(
    spec: Pretrain, step_start: int, step_end: int, shard_paths: dict, tokenizer_dir, init_dir, out_dir, log=print, save_steps=()
):
    """Train spec.run from step_start (checkpoint `init_dir`, or scratch if 0) to step_end; write the
    checkpoint at step_end to `out_dir` and those at `save_steps` (between the two) to out_dir/step{k}.

    Raises Terminated, having written nothing, if SIGTERM arrives before the last step starts.
    """
    if not all(step_start < k < step_end for k in save_steps):
        raise ValueError(f"save_steps {list(save_steps)}: expected steps between {step_start} and {step_end}")
    with stop_on_sigterm() as terminated:
        return _train_segment(
            spec, step_start, step_end, shard_paths, tokenizer_dir, init_dir, out_dir, log, terminated, set(save_steps)
        )


def _train_segment(spec, step_start, step_end, shard_paths, tokenizer_dir, init_dir, out_dir, log, terminated, save_steps):
    torch.use_deterministic_algorithms(True)
    run, training = spec.run, spec.training
    tok = tokenizer_lib.load(tokenizer_dir)
    eos, sentinels = tokenizer_lib.eos_id(tok), tokenizer_lib.sentinel_ids(tok)
    cfg = model_config(run, training, tok.get_vocab_size(), eos)
    steps_total = run.steps_total
    batch_size, seq_len = training.batch_size, training.seq_len
    tokens_per_step = training.tokens_per_step
    accelerator = make_accelerator(training)
    device = accelerator.device

    torch.manual_seed(run.seed)
    if step_start == 0:
        model, state = Llama(cfg), {"step": 0, "tokens": 0, "tokens_per_domain": {d: 0 for d in run.mixture}}
        resume = None
    else:
        manifest = verify(init_dir)
        if manifest["config_hash"] != spec.config_hash:
            raise CheckpointError(f"{init_dir}: trained with another run or training config; rerun the run's earlier segments")
        state = read_json(Path(init_dir) / TRAINER_STATE)
        if state["step"] != step_start:
            raise ValueError(f"{init_dir}: checkpoint is at step {state['step']}, segment expects {step_start}")
        model = load_model(init_dir)
        resume = torch.load(Path(init_dir) / RESUME_STATE, weights_only=False, map_location="cpu")
        torch.set_rng_state(resume["torch_rng"])

    model = accelerator.prepare(model)  # to the device; bf16: forward under autocast, float32 logits
    # The optimizer is built on the placed model and not wrapped by accelerate: its wrapper adds
    # nothing for one process without fp16 loss scaling, and its step() looks for an optional
    # package on disk every call (importlib find_spec, measured ~1 ms per step here).
    opt = make_optimizer(model, run.lr, training.weight_decay)
    params = list(model.parameters())  # once: model.parameters() walks every module at each call
    if resume is not None:
        opt.load_state_dict(resume["optimizer"])  # torch moves the state to the parameters' device
    shards = load_shards(shard_paths)
    fpt = flops_per_token(cfg)
    # Losses stay on the device until logged: loss.item() every step would stall a GPU.
    losses, t0 = deque(maxlen=20), time.time()
    log(f"device {device}, precision {training.precision}")
    model.train()

    def trainer_state(step):
        """The checkpoint's trainer state at `step`: counts so far, the mean loss of its last (<= 20) steps, the last lr."""
        tail = [loss.item() for loss in losses]
        return {
            **state,
            "tokens_per_domain": dict(state["tokens_per_domain"]),
            "run": run.name,
            "step": step,
            "tokens": step * tokens_per_step,
            "flops": float(fpt * step * tokens_per_step),
            "train_loss": float(sum(tail) / len(tail)),
            "lr": lr,
            **n_params(cfg),
        }

    with atomic_dir(out_dir) as tmp:  # the whole segment lands at once: no checkpoint of it is visible before all are written
        for step in range(step_start, step_end):
            if terminated.is_set():
                raise Terminated(f"SIGTERM at step {step} of segment {step_start}-{step_end}; nothing written, rerun the segment")
            lr = lr_at(step, steps_total, run.lr, training)
            for group in opt.param_groups:
                group["lr"] = lr
            rows, counts = get_batch(shards, run.mixture, run.seed, step, batch_size, seq_len)
            x, mask, y = objectives.make_batch(run.objective, rows, run.seed, step, sentinels, eos)
            x, y = x.to(device), y.to(device)
            logits = model(x, attn_mask=None if mask is None else mask.to(device))
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), y.reshape(-1), ignore_index=objectives.IGNORE)
            opt.zero_grad(set_to_none=True)
            accelerator.backward(loss)
            accelerator.clip_grad_norm_(params, training.grad_clip)
            opt.step()
            losses.append(loss.detach())
            for d, n in counts.items():
                state["tokens_per_domain"][d] += n
            if (step + 1) % training.log_every == 0 or step + 1 == step_end:
                dt = time.time() - t0
                done = step + 1 - step_start
                log(
                    f"step {step + 1}/{steps_total} loss {loss.item():.4f} lr {lr:.2e} "
                    f"{done * tokens_per_step / dt:.0f} tok/s {done * tokens_per_step * fpt / dt / 1e9:.2f} GFLOP/s"
                )
            if step + 1 in save_steps:
                tmp_step = tmp / f"step{step + 1}"
                tmp_step.mkdir()
                _save(tmp_step, accelerator.unwrap_model(model), opt, tokenizer_dir, trainer_state(step + 1), spec.config_hash)
                losses.clear()  # train_loss: the mean over the steps since the last checkpoint, as when segments are separate jobs
        final = trainer_state(step_end)
        _save(tmp, accelerator.unwrap_model(model), opt, tokenizer_dir, final, spec.config_hash)
    return final


def _save(directory, model, opt, tokenizer_dir, state, config_hash):
    """One checkpoint: weights, tokenizer, resume state (optimizer, RNG), trainer state, and last its manifest."""
    save_model(model, directory)
    for name in tokenizer_lib.HF_FILES:
        shutil.copy(Path(tokenizer_dir) / name, directory / name)
    torch.save({"optimizer": opt.state_dict(), "torch_rng": torch.get_rng_state()}, directory / RESUME_STATE)
    write_json(state, directory / TRAINER_STATE)
    write_manifest(directory, state["run"], state["step"], config_hash)
