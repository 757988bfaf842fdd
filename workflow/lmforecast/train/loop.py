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

Under several processes the model is data-parallel (`training.parallel`): replicated with DDP
(through accelerate) or sharded with PyTorch's FSDP2 (`fully_shard`, one unit per decoder block),
for a model whose weights, gradients and optimizer state do not fit one device. Either way only
rank 0 writes, and the checkpoint is the same whole one, which resumes under any mode.
"""

import math
import os
import shutil
import signal
import threading
import time
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
from lmforecast.train.model import Llama, ModelConfig, flops_per_token, load_model, n_params, save_weights

RESUME_STATE = "resume.pt"
TRAINER_STATE = "trainer_state.json"
PRECISIONS = {"fp32": "no", "bf16": "bf16"}  # training.precision -> accelerate's mixed_precision
LOSS_HISTORY = "loss_history"  # trainer state: every step's loss since the previous checkpoint

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


class SetupError(ValueError):
    """A segment that cannot train as configured and launched (processes, batch split, memory); nothing was trained."""


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
    """accelerate's Accelerator for training.precision (GPU if there is one, else CPU).

    Under `torchrun` or `accelerate launch` it joins their process group (NCCL on GPUs, gloo on
    CPUs: cpu=True is what makes accelerate use several CPU processes) and wraps the model in DDP.
    """
    from accelerate import Accelerator  # ~0.2 s of imports, only in the jobs that train
    from accelerate.state import AcceleratorState

    # accelerate keeps its state in a process-wide singleton that refuses a second precision;
    # a job trains one segment, but tests and the benchmark train several in one process.
    AcceleratorState._reset_state(reset_partial_state=True)
    return Accelerator(mixed_precision=PRECISIONS[training.precision], cpu=not torch.cuda.is_available())


def check_parallel(training: Training):
    """Refuse a launch whose processes do not match training.parallel, before any process group starts."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local = int(os.environ.get("LOCAL_WORLD_SIZE", world))
    if training.parallel == "none" and world > 1:
        raise SetupError(f"training.parallel is none but this job runs as {world} processes; set training.parallel: ddp or fsdp")
    if training.parallel != "none" and world == 1:
        raise SetupError(
            f"training.parallel: {training.parallel}, but this job runs as 1 process: the pretrain rule launches resources.ranks "
            "processes (workflow/profiles/default/config.yaml: one per GPU of LMFORECAST_GPUS, or LMFORECAST_RANKS); "
            "set it to 2 or more, or training.parallel: none"
        )
    if torch.cuda.is_available() and local > torch.cuda.device_count():
        raise SetupError(
            f"training.parallel: {local} processes on this node but {torch.cuda.device_count()} GPU(s); "
            "ask for a GPU per process (LMFORECAST_GPUS, workflow/profiles/default/config.yaml)"
        )


STATE_BYTES_PER_PARAM = 16  # float32 weights and gradients, AdamW's two moments


def check_fits(run: Run, cfg: ModelConfig, device, processes_here: int, shards: int = 1):
    """Refuse a model whose weights, gradients and optimizer state alone exceed the device's memory
    (under FSDP, their share: 1 / `shards` of them)."""
    need = n_params(cfg)["n_params"] * STATE_BYTES_PER_PARAM / shards
    if device.type == "cuda":
        have = torch.cuda.get_device_properties(device).total_memory
    else:  # the node's memory, shared by its processes
        have = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // processes_here
    if need > have:
        sharded = f" (sharded over {shards} processes)" if shards > 1 else ""
        raise SetupError(
            f"runs.{run.name}: size {run.size_name} has {n_params(cfg)['n_params'] / 1e6:.0f}M parameters, whose weights, "
            f"gradients and AdamW state need {need / 2**30:.1f} GiB per process{sharded}, more than the {have / 2**30:.1f} GiB "
            f"of {device}; choose a smaller size (runs.{run.name}.size), shard it over more GPUs (training.parallel: fsdp, "
            "LMFORECAST_GPUS) or a device with more memory"
        )


# Peak dense bf16 tensor-core FLOP/s per GPU (vendor data sheets), for the MFU in the job log.
PEAK_FLOPS = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L40S": 362e12}


def peak_flops(device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_FLOPS.items() if k in name), None)


def train_segment(
    spec: Pretrain, step_start: int, step_end: int, shard_paths: dict, tokenizer_dir, init_dir, out_dir, log=print, save_steps=()
):
    """Train spec.run from step_start (checkpoint `init_dir`, or scratch if 0) to step_end; write the
    checkpoint at step_end to `out_dir` and those at `save_steps` (between the two) to out_dir/step{k}.

    Raises Terminated, having written nothing, if SIGTERM arrives before the last step starts.
    """
    if not all(step_start < k < step_end for k in save_steps):
        raise ValueError(f"save_steps {list(save_steps)}: expected steps between {step_start} and {step_end}")
    check_parallel(spec.training)
    with stop_on_sigterm() as terminated:
        return _train_segment(
            spec, step_start, step_end, shard_paths, tokenizer_dir, init_dir, out_dir, log, terminated, set(save_steps)
        )


@contextmanager
def _no_dir():
    yield None


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
    device, world, rank = accelerator.device, accelerator.num_processes, accelerator.process_index
    main = accelerator.is_main_process
    if not main:  # one job log, rank 0's (a rank's errors still reach it, through the launcher)
        log = lambda *args: None  # noqa: E731
    # Global batch = micro x accumulation x world; rank r takes rows [r * share, (r + 1) * share) of it.
    micro = training.micro_batch_size or batch_size // world
    if batch_size % (micro * world):
        raise SetupError(f"training.batch_size {batch_size} is not a multiple of micro_batch_size {micro} x {world} processes")
    accumulation, share = batch_size // (micro * world), batch_size // world
    mine = range(rank * share, (rank + 1) * share)
    sharded = training.parallel == "fsdp"
    check_fits(run, cfg, device, int(os.environ.get("LOCAL_WORLD_SIZE", world)), shards=world if sharded else 1)
    # The stop flag is agreed on over a CPU (gloo) group, so that checking it never waits for the GPU.
    stop_group = None
    if world > 1:
        import torch.distributed as dist

        stop_group = dist.new_group(backend="gloo")

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
        state.pop(LOSS_HISTORY, None)  # the previous checkpoint's steps; this one keeps its own
        model = load_model(init_dir)
        resume = torch.load(Path(init_dir) / RESUME_STATE, weights_only=False, map_location="cpu")
        torch.set_rng_state(resume["torch_rng"])

    if sharded:  # FSDP2: each rank keeps its 1/world of every parameter on the device
        model = shard_model(model, device, world)
    else:
        model = accelerator.prepare(model)  # to the device (DDP-wrapped under several processes); bf16: autocast
    if training.compile:  # fused kernels; the same weights to float rounding (tests/test_ddp.py)
        model = torch.compile(model)
    # The optimizer is built on the placed model and not wrapped by accelerate: its wrapper adds
    # nothing without fp16 loss scaling, and its step() looks for an optional
    # package on disk every call (importlib find_spec, measured ~1 ms per step here).
    opt = make_optimizer(model, run.lr, training.weight_decay)
    params = list(model.parameters())  # once: model.parameters() walks every module at each call
    if resume is not None:  # torch moves the state to the parameters' device
        opt.load_state_dict(shard_optimizer_state(opt, resume["optimizer"]) if sharded else resume["optimizer"])
    shards = load_shards(shard_paths)
    fpt, peak = flops_per_token(cfg), peak_flops(device)
    # This rank's share of each step's loss, on the device until logged or saved: loss.item() every
    # step would stall a GPU. The ranks' shares sum to the step's loss (global_losses).
    losses, t0 = [], time.time()
    log(f"device {device}, precision {training.precision}, {world} process(es) x {accumulation} micro-batches of {micro} rows")
    if sharded:
        here = sum(p.to_local().numel() for p in params)
        log(f"fsdp: rank 0 holds {here} of the {n_params(cfg)['n_params']} parameters")
    # FSDP's gradient reduce-scatter waits for the last micro-batch (as DDP's no_sync); accelerate's
    # autocast is applied here, since accelerate does not prepare the sharded model (its FSDP plugin
    # is for GPUs only: on CPU processes it trains DDP, which would leave the FSDP path untested here).
    no_sync = _fsdp_no_sync if sharded else accelerator.no_sync
    autocast = accelerator.autocast if sharded else _no_dir
    model.train()

    def global_losses():
        """The loss of each step since the last checkpoint, over the global batch (a collective: every rank calls it)."""
        if not losses:
            return []
        stacked = torch.stack(losses)
        return (accelerator.reduce(stacked, "sum") if world > 1 else stacked).tolist()

    def trainer_state(step):
        """The checkpoint's trainer state at `step`: counts so far, the mean loss of its last (<= 20) steps,
        every step's loss since the previous checkpoint, the last lr."""
        history = global_losses()
        tail = history[-20:]
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
            LOSS_HISTORY: {"first_step": step - len(history) + 1, "loss": history},
        }

    def stop_now():
        if stop_group is None:
            return terminated.is_set()
        flag = torch.tensor([float(terminated.is_set())])
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX, group=stop_group)
        return bool(flag.item())

    # Only rank 0 writes; the whole segment lands at once: no checkpoint of it is visible before all are written.
    with atomic_dir(out_dir) if main else _no_dir() as tmp:
        for step in range(step_start, step_end):
            if stop_now():  # every rank stops at the same step
                raise Terminated(f"SIGTERM at step {step} of segment {step_start}-{step_end}; nothing written, rerun the segment")
            lr = lr_at(step, steps_total, run.lr, training)
            for group in opt.param_groups:
                group["lr"] = lr
            micro_batches, counts = _micro_batches(run, step, shards, batch_size, seq_len, mine, micro, sentinels, eos)
            opt.zero_grad(set_to_none=True)
            step_loss = None
            for m, (x, mask, y, weight) in enumerate(micro_batches):
                x, y, mask = (_to_device(t, device) for t in (x, y, mask))
                # Gradients are all-reduced once per step, on the last micro-batch.
                with no_sync(model) if m < accumulation - 1 else _no_dir():
                    with autocast():
                        logits = model(x, attn_mask=mask)
                    if sharded:  # float32 logits for the loss, as accelerate returns a prepared model's outputs
                        logits = logits.float()
                    loss = F.cross_entropy(logits.view(-1, logits.size(-1)), y.reshape(-1), ignore_index=objectives.IGNORE)
                    # weight * world: DDP and FSDP average over ranks; the step's loss is the mean over all its labels.
                    accelerator.backward(loss * (weight * world))
                part = loss.detach() * weight
                step_loss = part if step_loss is None else step_loss + part
            accelerator.clip_grad_norm_(params, training.grad_clip)
            opt.step()
            losses.append(step_loss)
            for d, n in counts.items():
                state["tokens_per_domain"][d] += n
            if (step + 1) % training.log_every == 0 or step + 1 == step_end:
                dt = time.time() - t0
                done = step + 1 - step_start
                flops = done * tokens_per_step * fpt / dt
                mfu = f" MFU {flops / world / peak:.1%}" if peak else ""
                log(
                    f"step {step + 1}/{steps_total} loss {global_losses()[-1]:.4f} lr {lr:.2e} "
                    f"{done * tokens_per_step / dt:.0f} tok/s {flops / 1e9:.2f} GFLOP/s{mfu}"
                )
            if step + 1 in save_steps:
                saved = trainer_state(step + 1)
                weights, optimizer = full_state(accelerator, model, opt, sharded)  # a collective under FSDP
                if main:
                    tmp_step = tmp / f"step{step + 1}"
                    tmp_step.mkdir()
                    _save(tmp_step, cfg, weights, optimizer, tokenizer_dir, saved, spec.config_hash)
                losses.clear()  # train_loss: the mean over the steps since the last checkpoint, as when segments are separate jobs
        final = trainer_state(step_end)
        weights, optimizer = full_state(accelerator, model, opt, sharded)
        accelerator.wait_for_everyone()  # every rank has finished its last step before rank 0 writes
        if main:
            _save(tmp, cfg, weights, optimizer, tokenizer_dir, final, spec.config_hash)
    accelerator.wait_for_everyone()  # no rank reports success before the checkpoint is in place
    return final


def _to_device(t, device):
    """A host tensor on the device; to a GPU from pinned memory, asynchronously (a pageable copy would wait for the GPU)."""
    if t is None or device.type != "cuda":
        return None if t is None else t.to(device)
    return t.pin_memory().to(device, non_blocking=True)


def _micro_batches(run, step, shards, batch_size, seq_len, mine, micro, sentinels, eos):
    """This rank's micro-batches of the step's global batch, each (x, mask, y, weight), and the batch's tokens per domain.

    weight: the micro-batch's share of the global batch's labelled tokens, so that the weighted sum of the
    micro-batches' mean losses is the global batch's mean loss (exactly 1.0 for one process without accumulation).
    """
    if run.objective == "clm":  # every token is labelled and there is no mask randomness: draw only this rank's rows
        rows, counts = get_batch(shards, run.mixture, run.seed, step, batch_size, seq_len, rows=mine)
        x, mask, y = objectives.make_batch(run.objective, rows, run.seed, step, sentinels, eos)
        labelled = batch_size * seq_len
    else:  # the masks' random numbers run over the whole batch: make it, then take this rank's rows
        rows, counts = get_batch(shards, run.mixture, run.seed, step, batch_size, seq_len)
        x, mask, y = objectives.make_batch(run.objective, rows, run.seed, step, sentinels, eos)
        labelled = (y != objectives.IGNORE).sum().item()  # on the host: no device sync
        x, mask, y = x[mine.start : mine.stop], mask[mine.start : mine.stop], y[mine.start : mine.stop]
    out = []
    for s in range(0, len(y), micro):
        ys = y[s : s + micro]
        out.append(
            (
                x[s : s + micro],
                None if mask is None else mask[s : s + micro],
                ys,
                (ys != objectives.IGNORE).sum().item() / labelled,
            )
        )
    return out, counts


def shard_model(model, device, world):
    """The model sharded over the processes with PyTorch's FSDP2: one unit per decoder block (a block's full
    weights exist only while it runs) and the root for the rest (the tied embedding stays one parameter).
    fully_shard moves each rank's shards to the device."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    mesh = init_device_mesh(device.type, (world,))
    for block in model.model.layers:
        fully_shard(block, mesh=mesh)
    return fully_shard(model, mesh=mesh)


@contextmanager
def _fsdp_no_sync(model):
    model.set_requires_gradient_sync(False)
    try:
        yield
    finally:
        model.set_requires_gradient_sync(True)


def full_state(accelerator, model, opt, sharded):
    """(weights, optimizer state) as a 1-process run holds them, on rank 0 (None elsewhere): under FSDP every
    sharded tensor is gathered whole, one at a time, to the host (all ranks take part), so that the checkpoint
    is the same HF checkpoint and resume state as DDP's and resumes under any training.parallel.
    The optimizer state keeps torch's own format (state keyed by parameter index), which opt.load_state_dict
    reads; torch.distributed.checkpoint's full optimizer state dict keys it by parameter name instead."""
    model = accelerator.unwrap_model(model, keep_torch_compile=False)  # DDP's and torch.compile's wrappers off
    if not sharded:
        return model.state_dict(), opt.state_dict()
    from torch.distributed.tensor import DTensor

    main = accelerator.is_main_process

    def whole(t):
        if not isinstance(t, DTensor):
            return t
        full = t.full_tensor()
        return full.cpu() if main else None

    weights = {k: whole(v) for k, v in model.state_dict().items() if k != "lm_head.weight"}  # tied: saved once
    optimizer = opt.state_dict()
    optimizer["state"] = {i: {k: whole(v) for k, v in s.items()} for i, s in optimizer["state"].items()}
    return (weights, optimizer) if main else (None, None)


def shard_optimizer_state(opt, full):
    """A whole optimizer state (as written by full_state) cut into this rank's shards of the parameters."""
    from torch.distributed.tensor import distribute_tensor

    params = [p for group in opt.param_groups for p in group["params"]]
    state = {
        i: {
            k: distribute_tensor(v, params[i].device_mesh, params[i].placements, src_data_rank=None) if v.dim() else v
            for k, v in s.items()
        }
        for i, s in full["state"].items()
    }
    return {**full, "state": state}


def _save(directory, cfg, weights, optimizer, tokenizer_dir, state, config_hash):
    """One checkpoint: weights, tokenizer, resume state (optimizer, RNG), trainer state, and last its manifest."""
    save_weights(cfg, weights, directory)
    for name in tokenizer_lib.HF_FILES:
        shutil.copy(Path(tokenizer_dir) / name, directory / name)
    torch.save({"optimizer": optimizer, "torch_rng": torch.get_rng_state()}, directory / RESUME_STATE)
    write_json(state, directory / TRAINER_STATE)
    write_manifest(directory, state["run"], state["step"], config_hash)
