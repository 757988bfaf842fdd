"""Kill/resume: a pretrain segment SIGTERM'ed at random steps and rerun ends with the weights of an uninterrupted run.

The segment runs as the pretrain rule runs it (`lmforecast pretrain ...` in its own process),
resuming from an earlier segment's checkpoint, with a non-trivial objective (ul2) and schedule
(wsd) so that masks and learning rates must also be reproduced. LMF_RESUME_KILLS (default 10, as issue 11 asks)
sets how many kills, LMF_RESUME_SEED (default 0) where they land.
"""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from test_train import TRAINING, job, make_run, weights

from lmforecast.io import read_json
from lmforecast.train.checkpoint import verify
from lmforecast.train.loop import TRAINER_STATE, train_segment

ROOT = Path(__file__).resolve().parents[1]
KILLS = int(os.environ.get("LMF_RESUME_KILLS", "10"))
SEED = int(os.environ.get("LMF_RESUME_SEED", "0"))
START, END = 10, 40  # the killed segment resumes from the checkpoint at START


def pretrain(spec, shard_paths, tokenizer, init, out):
    """The pretrain rule's command line, started in its own process (stdout line-buffered by our logger)."""
    cmd = [
        sys.executable,
        "-m",
        "lmforecast.cli",
        "pretrain",
        "--spec",
        json.dumps(spec),
        "--shards",
        *map(str, shard_paths.values()),
        "--tokenizer",
        str(tokenizer),
        "--init",
        str(init),
        "--step-start",
        str(START),
        "--step-end",
        str(END),
        "--out",
        str(out),
        "--threads",
        "1",
    ]
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'workflow'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)


def test_sigterm_at_random_steps_then_rerun_gives_the_uninterrupted_weights(shards, tiny_tokenizer, tmp_path):
    run = make_run(objective="ul2", steps_total=END)
    training = {**TRAINING, "schedule": "wsd", "decay_frac": 0.3, "decay_shape": "1-sqrt", "log_every": 1}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the job (--threads 1): the same kernels, so the same bits
    try:
        train_segment(job(run, training), 0, END, shards, tiny_tokenizer, None, tmp_path / "uninterrupted", log=lambda m: None)
        train_segment(job(run, training), 0, START, shards, tiny_tokenizer, None, tmp_path / "first", log=lambda m: None)
    finally:
        torch.set_num_threads(threads)

    out = tmp_path / "second" / f"step{END}"
    spec = {"run": run, "training": training}
    kill_steps = sorted(np.random.default_rng(SEED).choice(np.arange(START + 1, END + 1), size=KILLS, replace=False))
    abandoned = 0
    for k in kill_steps:
        proc = pretrain(spec, shards, tiny_tokenizer, tmp_path / "first", out)
        for line in proc.stdout:
            if line.startswith(f"step {k}/"):
                proc.send_signal(signal.SIGTERM)
                break
        log = line + proc.stdout.read()
        rc = proc.wait(timeout=120)
        assert not list(out.parent.glob(".tmp-*")), f"kill after step {k} left a temporary checkpoint\n{log}"
        if rc == 128 + signal.SIGTERM:
            abandoned += 1
            assert "SIGTERM at step" in log and not out.exists(), log
        else:  # SIGTERM during the last step or the write: the checkpoint is completed, and complete
            assert rc == 0, log
            assert verify(out)["step"] == END
            out.rename(out.with_name(f"completed-after-kill-{k}"))
    assert abandoned, f"no kill landed before the last step ({kill_steps}); the test did not test abandoning"

    proc = pretrain(spec, shards, tiny_tokenizer, tmp_path / "first", out)
    log = proc.stdout.read()
    assert proc.wait(timeout=120) == 0, log
    verify(out)
    expected, got = weights(tmp_path / "uninterrupted"), weights(out)
    assert all(torch.equal(expected[k], got[k]) for k in expected)
    assert (
        read_json(out / TRAINER_STATE)["tokens_per_domain"]
        == read_json(tmp_path / "uninterrupted" / TRAINER_STATE)["tokens_per_domain"]
    )
    for done in out.parent.glob("completed-after-kill-*"):
        assert all(torch.equal(expected[k], v) for k, v in weights(done).items())
