"""How long the scaling back-test takes: a 20-run ladder, every predictor, bootstrap 100.

    python bench/scaling.py            # writes bench/results/scaling.json

The ladder (5 sizes x 4 token multipliers, 10 checkpoints each, 4 tasks with accuracy and bits
per byte, 2 domains) is drawn here from known laws with a little noise. `ours` is this
checkout's lmforecast.fits.scaling; `reference` is the same back-test by the code at
--reference (default: the lead's checkout, /work/main/workflow; it runs the 5 chains, ours also the ensemble),
each in a fresh process with 2 workers (the fit's threads), timed from outside, on the same tables.
The goal is under 2 minutes on the 2-core machine.
"""

import argparse
import datetime
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl
from device import cpu_name, write_result  # bench/device.py, beside this script

REPO = Path(__file__).resolve().parents[1]
TASKS = {"t1": 0.25, "t2": 0.25, "t3": 0.5, "t4": 0.25}

FIT = """
import sys, time, polars as pl
from lmforecast.fits.scaling import ScalingSettings
from lmforecast.fits.scaling.backtest import backtest
tables = {n: pl.read_parquet(f"{sys.argv[1]}/{n}.parquet") for n in ("runs", "checkpoints", "domain_losses", "task_scores")}
cfg = {"metric": "acc", "shots": 0, "prompt": None, "emerged_margin": 0.05, "holdout": "largest_compute",
       "predictors": sys.argv[3].split(","), "bootstrap": int(sys.argv[2])}
params, preds, report = backtest(tables, ScalingSettings.from_dict(cfg), workers=2)
print(preds.height)
"""


def ladder(path: Path, seed=0):
    rng = np.random.default_rng(seed)
    runs, ck, dl, ts = [], [], [], []
    for n in (1.9e8, 3.7e8, 7.6e8, 1.0e9, 1.3e9):
        for mult in (1, 2, 5, 10):
            run = f"{n / 1e6:.0f}M-{mult}xC"
            runs.append({"run": run, "mixture": "m", "objective": "clm", "lr": 0.003, "n_params": int(n)})
            for step in range(100, 1001, 100):
                tokens = int(20 * mult * n * step / 1000)
                loss = 1.8 + 400 / n**0.34 + 400 / tokens**0.28
                ck.append({"run": run, "step": step, "tokens": tokens, "flops": 6.0 * n * tokens})
                dl += [{"run": run, "step": step, "domain": d, "loss": loss + off} for d, off in (("web", 0.1), ("code", -0.3))]
                for i, (task, chance) in enumerate(TASKS.items()):
                    bpb = 0.3 * (i + 1) * loss / 2
                    acc = chance + (1 - chance) / (1 + np.exp(6 * (bpb - 0.4 * (i + 1)))) + rng.normal(0, 0.01)
                    for metric, value in (("acc", float(np.clip(acc, 0, 1))), ("bits_per_byte", bpb)):
                        row = {"run": run, "step": step, "task": task, "prompt": "p", "shots": 0, "metric": metric}
                        ts.append(row | {"value": value, "chance": chance, "n": 1000})
    for name, rows in {"runs": runs, "checkpoints": ck, "domain_losses": dl, "task_scores": ts}.items():
        pl.DataFrame(rows).write_parquet(path / f"{name}.parquet")


CHAINS = ["direct", "flp", "chinchilla", "ladder", "flpm"]
OURS = CHAINS + ["flat", "ensemble"]  # the reference has neither: ours does more work in its time


def timed(workflow: str, data: Path, bootstrap: int, predictors: list[str]) -> float:
    env = {**os.environ, "PYTHONPATH": workflow}
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", FIT, str(data), str(bootstrap), ",".join(predictors)], env=env, check=True, capture_output=True
    )
    return time.perf_counter() - start


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", type=int, default=100)
    ap.add_argument("--reference", default="/work/main/workflow")
    ap.add_argument("--out", default=str(REPO / "bench/results/scaling.json"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ladder(Path(tmp))
        ours = timed(str(REPO / "workflow"), Path(tmp), args.bootstrap, OURS)
        reference = timed(args.reference, Path(tmp), args.bootstrap, CHAINS)
    result = {
        "name": "scaling back-test: 20-run ladder, every predictor (ours: 5 chains, flat and the ensemble; reference: the 5 chains), 4 tasks",
        "ours": round(ours, 1),
        "reference": round(reference, 1),
        "ratio": round(reference / ours, 2),
        "unit": "seconds of wall time (one run each), lower is better; ratio = reference / ours",
        "goal": "ours < 120 s on the 2-core machine",
        "bootstrap": args.bootstrap,
        "load_average_1min": os.getloadavg()[0],
        "device": f"cpu: {cpu_name()}, {os.cpu_count()} cores, 2 workers",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": "python bench/scaling.py " + " ".join(sys.argv[1:]),
    }
    write_result(result, args.out)


if __name__ == "__main__":
    main()
