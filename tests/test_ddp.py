"""Data-parallel pre-training on the CPU (gloo), launched as the pretrain rule launches it: torchrun + the CLI.

2 processes x micro-batches of 2 rows and 1 process x 2 accumulated micro-batches of 2 rows train
on the same micro-batches of the same global batch, through the same kernels (same shapes). DDP
sums the two ranks' gradients and halves the sum; the single process adds the two halves: the loss
weights are powers of two (exact in floating point) and a sum of two addends does not depend on
their order, so the weights agree bit for bit here (measured: max difference 0.0). We allow 1e-6
relative, a few float32 ulps, for CPUs whose matmul blocking differs with the thread count (the
torchrun workers use 1 thread, this process torch's default); a wrong split of the batch or a
loss averaged twice shows up as differences of 1e-3 and more.
"""

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import tiny
import torch

from lmforecast.data.shards import get_batch
from lmforecast.io import read_json
from lmforecast.settings import Pretrain
from lmforecast.train import launch
from lmforecast.train.loop import TRAINER_STATE, SetupError, check_fits, train_segment
from lmforecast.train.model import ModelConfig, load_model

TRAINING = {**tiny.TRAINING, "log_every": 1, "micro_batch_size": 2}  # every step's loss, 2 rows per micro-batch
RUN = {
    "name": "r",
    "size": {"d_model": 32, "n_layers": 2, "n_heads": 2},
    "size_name": "s",
    "tokens": 40 * 128,
    "mixture": {"facts": 0.4, "arithmetic": 0.2, "code": 0.2, "prose": 0.2},
    "mixture_name": "m",
    "objective": "clm",
    "lr": 5e-3,
    "seed": 0,
    "steps_total": 40,
}
RTOL = 1e-6
FSDP_ATOL = 1e-7  # test_fsdp_...: float32 rounding of the sharded gradient norm


def spec(parallel="none", **training):
    return {"run": RUN, "training": {**TRAINING, "parallel": parallel, **training}}


def torchrun(spec, shards, tokenizer, out, step_start, step_end, init=None, save_steps=()):
    """The pretrain rule's command for training.parallel: ddp on 2 CPU processes, started (not waited for)."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "--no-python"]
    cmd += ["lmforecast", "pretrain", "--spec", json.dumps(spec), "--shards", *map(str, shards.values())]
    cmd += ["--tokenizer", str(tokenizer), "--step-start", str(step_start), "--step-end", str(step_end), "--out", str(out)]
    cmd += ["--init", str(init)] if init else []
    cmd += ["--save-steps", *map(str, save_steps)] if save_steps else []
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)


def torchrun_on_two_nodes(spec, shards, tokenizer, out, step_start, step_end, init, save_steps):
    """The pretrain rule's torchrun for 2 nodes of 1 process each (what srun starts on each node of a Slurm job),
    as two agents on this machine that meet at a local rendezvous; their output, both agents' together."""
    with socket.socket() as s:  # a free port for the rendezvous
        s.bind(("localhost", 0))
        port = s.getsockname()[1]
    args = launch.torchrun(1, nodes=2, endpoint=f"localhost:{port}", run_id="test") + ["lmforecast", "pretrain"]
    args += ["--spec", shlex.quote(json.dumps(spec)), "--shards", *map(str, shards.values()), "--tokenizer", str(tokenizer)]
    args += ["--step-start", str(step_start), "--step-end", str(step_end), "--out", str(out), "--init", str(init)]
    args += ["--save-steps", *map(str, save_steps)]
    agents = [
        subprocess.Popen(["bash", "-c", " ".join(args)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for _ in range(2)
    ]
    return "".join(agent.communicate(timeout=150)[0] for agent in agents)


def weights(path):
    return load_model(path).state_dict()


def assert_close(a, b):
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=RTOL, atol=0)


def test_a_ranks_rows_are_its_share_of_the_global_batch(shards):
    data = {d: np.load(p) for d, p in shards.items()}
    whole, counts = get_batch(data, RUN["mixture"], 0, 5, 8, 32)
    for rank in range(2):
        part, part_counts = get_batch(data, RUN["mixture"], 0, 5, 8, 32, rows=range(4 * rank, 4 * rank + 4))
        assert torch.equal(part, whole[4 * rank : 4 * rank + 4]) and part_counts == counts


def test_two_processes_equal_one_with_accumulation_write_once_and_resume_in_one(shards, tiny_tokenizer, tmp_path):
    ddp_out = tmp_path / "ddp" / "step6"
    job = torchrun(spec("ddp"), shards, tiny_tokenizer, ddp_out, 0, 6, save_steps=[3])
    # Meanwhile, in this process: 1 process accumulating 2 micro-batches of 2 rows, uninterrupted 0 -> 6.
    one = Pretrain.from_dict(spec())
    train_segment(one, 0, 6, shards, tiny_tokenizer, None, tmp_path / "one" / "step6", log=lambda *a: None, save_steps=[3])
    log, _ = job.communicate(timeout=120)
    assert job.returncode == 0, log
    assert "2 process(es) x 1 micro-batches" in log
    # Exactly one checkpoint: rank 0's, with its inner step3, and no temporary left beside it.
    assert sorted(p.name for p in ddp_out.parent.iterdir()) == ["step6"]
    assert sorted(p.name for p in ddp_out.iterdir() if p.is_dir()) == ["step3"]
    for ck in ("step6/step3", "step6"):
        assert_close(weights(tmp_path / "ddp" / ck), weights(tmp_path / "one" / ck))
        ddp, ref = (read_json(tmp_path / d / ck / TRAINER_STATE) for d in ("ddp", "one"))
        np.testing.assert_allclose(ddp["loss_history"]["loss"], ref["loss_history"]["loss"], rtol=RTOL)
        assert ddp["loss_history"]["first_step"] == ref["loss_history"]["first_step"]
        assert ddp["tokens_per_domain"] == ref["tokens_per_domain"]
    # The 2-process checkpoint at step 3, resumed by 1 process (accumulating the same micro-batches), continues
    # the uninterrupted run.
    resumed = tmp_path / "resumed" / "step6"
    train_segment(one, 3, 6, shards, tiny_tokenizer, tmp_path / "ddp" / "step6" / "step3", resumed, log=lambda *a: None)
    assert_close(weights(resumed), weights(tmp_path / "one" / "step6"))
    history = read_json(resumed / TRAINER_STATE)["loss_history"]
    assert history["first_step"] == 4 and len(history["loss"]) == 3


def test_sigterm_stops_every_rank_and_writes_nothing(shards, tiny_tokenizer, tmp_path):
    out = tmp_path / "killed" / "step40"
    job = torchrun(spec("ddp"), shards, tiny_tokenizer, out, 0, 40)
    deadline = time.time() + 90
    for line in job.stdout:  # wait until both ranks train
        if line.startswith("step 2/") or time.time() > deadline:
            break
    os.killpg(job.pid, signal.SIGTERM)  # as Slurm signals every process of the job step
    log = line + job.communicate(timeout=60)[0]
    assert job.returncode != 0
    assert log.count("nothing written") == 2, log  # both ranks stopped at a step boundary
    assert not out.parent.exists() or not any(out.parent.iterdir())


def test_a_parallel_mode_without_its_processes_is_explained(shards, tiny_tokenizer, tmp_path):
    """The pretrain rule with training.parallel: ddp but resources.ranks 1: one plain process; the job says what to set."""
    cmd = ["lmforecast", "pretrain", "--spec", json.dumps(spec("ddp")), "--shards", *map(str, shards.values())]
    cmd += ["--tokenizer", str(tiny_tokenizer), "--step-start", "0", "--step-end", "2", "--out", str(tmp_path / "x")]
    job = subprocess.run(cmd, capture_output=True, text=True)
    assert job.returncode == 1 and "Traceback" not in job.stderr, job.stderr
    assert re.search(r"training.parallel: ddp, but this job runs as 1 process.*LMFORECAST_GPUS", job.stderr)
    assert not (tmp_path / "x").exists()


def test_a_model_too_large_for_the_device_fails_before_training(shards, tiny_tokenizer, tmp_path):
    huge = {**RUN, "size": {"d_model": 65536, "n_layers": 512, "n_heads": 512}, "size_name": "huge"}
    with pytest.raises(ValueError, match=r"runs.r: size huge has \d+M parameters.*GiB.*runs.r.size"):
        train_segment(Pretrain.from_dict({"run": huge, "training": TRAINING}), 0, 2, shards, tiny_tokenizer, None, tmp_path / "x")


def test_compiled_training_gives_the_weights_of_eager_training(shards, tiny_tokenizer, tmp_path):
    """training.compile: torch.compile's fused kernels round differently, and AdamW's first steps (update ~ lr x
    g / |g|) carry a rounding difference in a near-zero gradient into the weight: measured 2.4e-6 at most (one of
    3072 elements; lr 5e-3), so 1e-5 absolute; the losses agree to 1e-5 relative."""
    for name, compiled in (("eager", False), ("compiled", True)):
        job = Pretrain.from_dict(spec(micro_batch_size=4, compile=compiled))
        train_segment(job, 0, 3, shards, tiny_tokenizer, None, tmp_path / name, log=lambda *a: None)
    eager, compiled = weights(tmp_path / "eager"), weights(tmp_path / "compiled")
    assert eager.keys() == compiled.keys()
    for k in eager:
        torch.testing.assert_close(compiled[k], eager[k], rtol=0, atol=1e-5)
    losses = [read_json(tmp_path / name / TRAINER_STATE)["loss_history"]["loss"] for name in ("eager", "compiled")]
    np.testing.assert_allclose(losses[1], losses[0], rtol=1e-5)


def test_fsdp_on_two_nodes_equals_one_process_with_accumulation_writes_once_and_resumes_under_either(
    shards, tiny_tokenizer, tmp_path
):
    """training.parallel: fsdp on 2 processes (gloo), each rank holding half of every parameter, its gradient and
    AdamW state, against 1 process accumulating the same 2 micro-batches per step. FSDP reduce-scatters the ranks'
    gradients (summed, then halved: exact, as DDP's all-reduce) and each rank's update of its shard is the 1-process
    arithmetic on those elements; only the gradient norm for clipping is summed in another order (per shard, then
    over the ranks), so the clip factor can differ in its last bit and the weights by about an ulp of an update
    per step; they add up where a weight is near zero, beyond RTOL (measured after 2-4 steps: 40% of the elements
    differ, by 1.2e-7 at most, which is one ulp of the largest weights, the norms' gains of ~1.0; at most 6.2e-9
    beyond RTOL, on weights near zero). So weights are compared to RTOL plus FSDP_ATOL = 1e-7 (one ulp at 1.0),
    losses to RTOL.

    One launch, as the pretrain rule launches a job of 2 nodes (1 process each; torchrun's rendezvous): FSDP
    resumes the 1-process checkpoint at step 2 (its whole optimizer state cut into shards), trains to 6 writing
    step 4 inside, and 1 process resumes FSDP's step 4."""
    one = Pretrain.from_dict(spec())
    ref = tmp_path / "one" / "step6"
    train_segment(one, 0, 6, shards, tiny_tokenizer, None, ref, log=lambda *a: None, save_steps=[2, 4])
    out = tmp_path / "fsdp" / "step6"
    log = torchrun_on_two_nodes(spec("fsdp"), shards, tiny_tokenizer, out, 2, 6, init=ref / "step2", save_steps=[4])
    assert "Traceback" not in log, log
    total = read_json(ref / TRAINER_STATE)["n_params"]
    assert "2 process(es) x 1 micro-batches" in log, log
    assert f"fsdp: rank 0 holds {total // 2} of the {total} parameters" in log, log  # sharded, not replicated
    # Exactly one checkpoint, rank 0's, gathered whole: the files of a 1-process checkpoint, its inner step4.
    assert sorted(p.name for p in out.parent.iterdir()) == ["step6"]
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["step4"]
    assert {p.name for p in out.iterdir() if p.is_file()} == {p.name for p in ref.iterdir() if p.is_file()}
    # 1 process resumes FSDP's step 4.
    resumed = tmp_path / "resumed" / "step6"
    train_segment(one, 4, 6, shards, tiny_tokenizer, out / "step4", resumed, log=lambda *a: None)
    for ck, ref_ck in ((out / "step4", ref / "step4"), (out, ref), (resumed, ref)):
        a, b = weights(ck), weights(ref_ck)
        for k in b:
            torch.testing.assert_close(a[k], b[k], rtol=RTOL, atol=FSDP_ATOL)
        a, b = (read_json(d / TRAINER_STATE) for d in (ck, ref_ck))
        np.testing.assert_allclose(a["loss_history"]["loss"], b["loss_history"]["loss"], rtol=RTOL)
        assert a["tokens_per_domain"] == b["tokens_per_domain"]


def test_fsdp_without_its_processes_or_too_large_even_sharded_is_explained(shards, tiny_tokenizer, tmp_path):
    assert launch.launcher("ddp", 2) == "torchrun --standalone --nproc-per-node 2 --no-python lmforecast"
    assert launch.launcher("none", 1) == "lmforecast"
    with pytest.raises(ValueError, match=r"2 node\(s\) x 4 process\(es\).*LMFORECAST_NODES.*training.parallel is none"):
        launch.launcher("none", 4, nodes=2)
    with pytest.raises(SetupError, match=r"training.parallel: fsdp, but this job runs as 1 process.*LMFORECAST_GPUS"):
        train_segment(Pretrain.from_dict(spec("fsdp")), 0, 2, shards, tiny_tokenizer, None, tmp_path / "x")
    assert not (tmp_path / "x").exists()
    huge = Pretrain.from_dict(
        {"run": {**RUN, "size": {"d_model": 65536, "n_layers": 512, "n_heads": 512}, "size_name": "huge"}, "training": TRAINING}
    )
    cfg = ModelConfig(**huge.run.size.__dict__, vocab_size=300, seq_len=32, eos_token_id=0)
    with pytest.raises(
        SetupError, match=r"size huge has \d+M parameters.*per process \(sharded over 8 processes\).*training.parallel: fsdp"
    ):
        check_fits(huge.run, cfg, torch.device("cpu"), 8, shards=8)


@pytest.mark.skipif(shutil.which("scontrol") is None, reason="needs Slurm's scontrol (installed by tests/slurm/run.sh)")
def test_the_launcher_of_a_job_of_two_nodes_starts_torchrun_on_each_meeting_at_the_first():
    """The pretrain rule's command prefix for 2 nodes of 4 GPUs, as the job's shell expands it inside a Slurm job."""
    env = {**os.environ, "SLURM_JOB_NODELIST": "gpu[07-08]", "SLURM_JOB_ID": "123", "SLURM_CPUS_PER_TASK": "32"}
    expanded = subprocess.run(
        ["bash", "-c", "echo " + launch.launcher("fsdp", 4, nodes=2)], env=env, capture_output=True, text=True
    )
    assert (
        expanded.stdout.split()
        == (
            "srun --nodes=2 --ntasks-per-node=1 --cpus-per-task=32 --kill-on-bad-exit=1 torchrun --nnodes=2 "
            "--nproc-per-node=4 --rdzv-backend=c10d --rdzv-endpoint=gpu07:29500 --rdzv-id=123 --no-python lmforecast"
        ).split()
    ), expanded.stderr
