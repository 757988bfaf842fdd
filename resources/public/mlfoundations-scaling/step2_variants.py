"""Three more step 2 candidates for the chain on the pre-training loss, against the shipped one (issue 23, thirteenth
session). The shipped step 2 is the sigmoid per task with its slope and rise shared by the three datasets
(`ladder.shared_shape`); each candidate changes one thing:

- weighted toward the larger runs: each fitted run's squared residual weighted by 1 + ln(N / N_min), (N / N_min)^0.25
  or (N / N_min)^0.5 (the weights' mean 1 per task and dataset), as the larger rungs lie nearer the runs predicted;
- fitted on step 1's loss: the sigmoid's x at the fitted runs is L(N, D) as step 1 fitted it, not their measured
  loss, so that step 2 is fitted where the chain evaluates it (the law's values) and absorbs step 1's bias;
- anchored at step 1's irreducible loss: one point (E, 1), the pre-training loss's analogue of the OLMo ladder's
  anchor (task loss 0 -> accuracy 1): a model at the text's entropy as the ceiling's witness.

The splits and measures of shared_step2.py (inside: 11M-154M fitted, the 412M runs held out, where the choice is
made; targets: 11M-412M fitted, the 1.4B and 6.9B runs held out, for scale): mean relative error over task x held-out
run, step 2 at the held-out runs' actual loss and in the chain (step 1 L(N, D) per dataset), avg46's beside.

    PYTHONPATH=workflow python resources/public/mlfoundations-scaling/step2_variants.py
"""

import sys
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).parent))
from choose_step2 import col, errors, law_at, load, outer_splits, step1_law  # noqa: E402 (beside this script)
from shared_step2 import _own, curve_of_shared, fit_keyed  # noqa: E402

from lmforecast.fits.scaling.curves import fit_sigmoid_shared, sigmoid  # noqa: E402

SHIPPED = "shared slope and rise (shipped)"
WEIGHTS = {  # name -> the weight of a fitted run of N parameters, given the task and dataset's smallest N_min
    "weighted 1 + ln(N / N_min)": lambda r: 1 + np.log(r),
    "weighted (N / N_min)^0.25": lambda r: r**0.25,
    "weighted (N / N_min)^0.5": lambda r: r**0.5,
}
PER_TASK = {"headroom": lambda t, f: t, "k": lambda t, f: t, "b": _own, "L0": _own}  # the shipped sharing, as fit_keyed's keys


def per_task_shared(tasks, families, groups):
    """The shipped step 2: {(task, dataset): curve}, each task's datasets fitted at once (fit_sigmoid_shared)."""
    curves = {}
    for task in tasks:
        pairs = [(task, fam) for fam in families]
        curves |= dict(zip(pairs, fit_sigmoid_shared([groups[p] for p in pairs])))
    return curves


def measure(cfg, frame):
    """Rows (split, where, shape, task, run, rel_error), as shared_step2.measure."""
    rows = []
    tasks = cfg["fit"]["scaling"]["tasks"]
    for split, train, test, families in outer_splits(cfg, frame):
        runs = {fam: train.filter(pl.col("family") == fam) for fam in families}
        held = {fam: test.filter(pl.col("family") == fam) for fam in families}
        law = {fam: step1_law(runs[fam]) for fam in families}
        groups, on_law, anchored, n_params = {}, {}, {}, {}
        for task in tasks:
            for fam in families:
                tr = runs[fam].filter(pl.col(f"score:{task}").is_not_null())
                x, y = col(tr, "loss"), col(tr, f"score:{task}")
                groups[(task, fam)], n_params[(task, fam)] = (x, y), col(tr, "n_params")
                on_law[(task, fam)] = (law_at(law[fam], tr), y)
                anchored[(task, fam)] = (np.append(x, law[fam]["E"]), np.append(y, 1.0))
        curves = {SHIPPED: per_task_shared(tasks, families, groups)}
        for name, weight in WEIGHTS.items():
            w = {pair: weight(n / n.min()) for pair, n in n_params.items()}
            w = {pair: v / v.mean() for pair, v in w.items()}
            curves[name] = fit_keyed(groups, curves[SHIPPED], PER_TASK, w)
        curves["fitted on step 1's loss"] = per_task_shared(tasks, families, on_law)
        curves["anchored at (E, 1)"] = per_task_shared(tasks, families, anchored)
        for shape, per_pair in curves.items():
            for (task, fam), c in per_pair.items():
                he, c = held[fam], curve_of_shared(c)
                for where, x in (("actual", col(he, "loss")), ("chain", law_at(law[fam], he))):
                    rows.extend(
                        {"split": split, "where": where, "shape": shape, "task": task, "run": r, "rel_error": e}
                        for r, e in zip(he["run"], errors(sigmoid(x, **c), col(he, f"score:{task}")))
                    )
    return pl.DataFrame(rows)


if __name__ == "__main__":
    errs = measure(*load())
    avg46 = pl.col("rel_error").filter(pl.col("task") == "avg46").mean().alias("avg46")
    summary = errs.group_by("where", "split", "shape").agg(pl.col("rel_error").mean(), avg46)
    with pl.Config(tbl_rows=60, fmt_str_lengths=40, tbl_cols=20):
        print(summary.pivot(on=["where", "split"], index="shape", values=["rel_error", "avg46"]).sort("shape"))
        per_task = errs.filter(pl.col("where") == "chain").group_by("split", "shape", "task").agg(pl.col("rel_error").mean())
        print(per_task.pivot(on="shape", index=["split", "task"], values="rel_error").sort("split", "task"))
