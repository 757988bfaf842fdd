"""The smoke workflow: the whole chain on tests/data/smoke.yaml, through Snakemake itself.

Run once per test session (conftest's `finished` fixture) and shared by test_workflow and test_report.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "tests" / "data" / "smoke.yaml"
BIN = str(Path(sys.executable).parent)  # snakemake and lmforecast of this environment


def snakemake(workdir, *args, check=True, env=None):
    # args first: --configfile takes several values and would swallow a target after it
    cmd = [f"{BIN}/snakemake", *args, "--cores", "2", "--configfile", str(workdir / "config.yaml")]
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", **(env or {})}
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
    return proc


def copy_workflow(dest):
    for name in ("workflow", "resources", "config"):
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, dest / name)
    shutil.copy(SMOKE, dest / "config.yaml")
    return dest


def planned_rules(workdir, *args, env=None) -> dict:
    """Rule -> number of jobs that `snakemake -n` plans (its "Job stats" table)."""
    proc = snakemake(workdir, "-n", *args, env=env)
    out = proc.stdout + proc.stderr
    stats = out.split("Job stats:", 1)[1].splitlines()[3:] if "Job stats:" in out else []
    jobs = {}
    for line in stats:
        parts = line.split()
        if len(parts) != 2 or parts[0] == "total":
            break
        jobs[parts[0]] = int(parts[1])
    return jobs
