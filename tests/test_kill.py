"""SIGKILL mid-write: no output that Snakemake would take as finished, and a rerun redoes exactly the killed job.

Two runs of the smoke config (2 segments each, SFT with one method), up to the aggregate tables, through
Snakemake itself. The writer of an output is found by the pid in its temporary name
(`.tmp-<pid>-<name>`, lmforecast/io.py) and killed as soon as that temporary appears; the writer
pauses before its rename (tests/failpoint/sitecustomize.py, the one thing injected), so the kill lands
while the job writes, on a loaded machine too:
- the pretrain job of the last segment (Snakemake survives: a job killed by the OOM killer);
- the aggregate job together with Snakemake (its whole process group: a lost node).
After each kill a dry run must plan exactly the killed job and the jobs that had not run yet; the
finished tables must equal those of an uninterrupted run, and no temporary may be left behind.
"""

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import polars as pl
import pytest
import yaml
from polars.testing import assert_frame_equal
from smoke import BIN, SMOKE, copy_workflow, snakemake
from test_workflow import planned_jobs

from lmforecast.config import checkpoint_steps
from lmforecast.io import atomic_dir, write_json
from lmforecast.settings import Training
from lmforecast.tables import SCHEMAS

pytestmark = pytest.mark.workflow

TABLES = tuple(SCHEMAS)  # every table aggregate writes
FAILPOINT = Path(__file__).parent / "failpoint"  # its sitecustomize.py pauses a write before the rename


def small_config():
    """The smoke config's two smallest runs (the config's checks want two: fit.selection's source and target)."""
    config = yaml.safe_load(SMOKE.read_text())
    config["runs"] = config["runs"][:2]
    config["sft"]["methods"] = ["full"]
    return config


def workdir_with(path, config):
    copy_workflow(path)
    (path / "config.yaml").write_text(yaml.safe_dump(config))
    return path


def kill_writer_of(workdir, target, directory, name, whole_group=False, timeout=300):
    """Run `snakemake --cores 1 target`; SIGKILL the process that writes `directory/name` as soon as its
    temporary appears (or Snakemake's process group, with the job in it). Returns the temporary's path.
    The writer pauses before its rename (tests/failpoint/sitecustomize.py), so the kill lands mid-write
    on a loaded machine too."""
    path = os.pathsep.join(p for p in (str(FAILPOINT), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "PYTHONPATH": path, "LMFORECAST_PAUSE_BEFORE_RENAME": name}
    cmd = [f"{BIN}/snakemake", target, "--cores", "1", "--configfile", str(workdir / "config.yaml")]
    proc = subprocess.Popen(
        cmd, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    pattern = re.compile(rf"\.tmp-(\d+)-{re.escape(name)}")
    deadline = time.monotonic() + timeout
    tmp = None
    while tmp is None and proc.poll() is None and time.monotonic() < deadline:
        if directory.is_dir():
            tmp = next((directory / e for e in os.listdir(directory) if pattern.fullmatch(e)), None)
        if tmp is None:
            time.sleep(0.001)
    if tmp is None:
        proc.kill()
        raise AssertionError(
            f"no temporary of {directory / name} appeared while `{' '.join(cmd)}` ran:\n{proc.communicate()[0][-3000:]}"
        )
    if whole_group:
        os.killpg(proc.pid, signal.SIGKILL)
    else:
        os.kill(int(pattern.fullmatch(tmp.name).group(1)), signal.SIGKILL)
    log = proc.communicate(timeout=timeout)[0]
    assert proc.returncode != 0, log
    assert tmp.exists(), f"the kill did not land mid-write: {tmp} was gone\n{log[-3000:]}"
    assert not (directory / name).exists(), f"a killed write left {directory / name} under its final name"
    return tmp


def test_sigkill_mid_write_then_snakemake_reruns_exactly_the_killed_job(tmp_path):
    config = small_config()
    run = config["runs"][0]["name"]
    first, last = checkpoint_steps(config["runs"][0]["tokens"], Training.from_dict(config["training"]))

    reference = workdir_with(tmp_path / "reference", config)
    snakemake(reference, "aggregate")

    work = workdir_with(tmp_path / "killed", config)
    everything = planned_jobs(work)  # a fresh directory: every job up to the tables, and `all`'s
    # 1. SIGKILL the last segment's pretrain job while it writes its checkpoint; Snakemake goes on.
    checkpoints = work / "results" / "checkpoints" / run
    stale = kill_writer_of(work, f"results/checkpoints/{run}/step{last}", checkpoints, f"step{last}")
    stores = [("tokenize", {"domain": d}) for d in ("facts", "arithmetic", "code", "prose")]
    done = [("world", {}), ("tokenizer", {}), *stores, ("pretrain", {"run": run, "step": str(first)})]
    assert sorted(planned_jobs(work), key=repr) == sorted([j for j in everything if j not in done], key=repr)
    assert ("pretrain", {"run": run, "step": str(last)}) in everything

    # 2. SIGKILL Snakemake and the aggregate job together while the job writes the first table.
    tables = work / "results" / "tables"
    kill_writer_of(work, "aggregate", tables, "runs.parquet", whole_group=True)
    assert not stale.exists(), "the rerun of the pretrain job did not remove the killed job's temporary checkpoint"
    assert (checkpoints / f"step{last}").is_dir()
    # the interrupted job is marked incomplete; --rerun-incomplete (set in profiles/slurm) reruns it
    assert planned_jobs(work, "--rerun-incomplete", "aggregate") == [("aggregate", {})]

    snakemake(work, "--unlock")  # the lock of the killed Snakemake, removed as after any lost node
    snakemake(work, "--rerun-incomplete", "aggregate")
    assert not list((work / "results").rglob(".tmp-*")), "a temporary was left behind"
    for name in TABLES:
        assert_frame_equal(
            pl.read_parquet(tables / f"{name}.parquet"),
            pl.read_parquet(reference / "results" / "tables" / f"{name}.parquet"),
            check_exact=True,
        )


def test_a_write_removes_the_temporaries_of_killed_writers_of_the_same_target(tmp_path):
    stale_file, stale_dir = tmp_path / ".tmp-4242-state.json", tmp_path / ".tmp-77-step20"
    stale_file.write_text("{")
    (stale_dir / "sub").mkdir(parents=True)
    other = tmp_path / ".tmp-4242-old-state.json"  # another target whose name ends the same way
    other.write_text("{")
    write_json({"step": 1}, tmp_path / "state.json")
    assert not stale_file.exists() and other.exists()
    with atomic_dir(tmp_path / "step20") as tmp:
        (tmp / "x").write_text("1")
    assert not stale_dir.exists() and (tmp_path / "step20" / "x").read_text() == "1"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".tmp-4242-old-state.json", "state.json", "step20"]
