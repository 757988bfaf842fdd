"""Step 2 pooled over a task's three datasets: does sharing the sigmoid's shape across data recipes help?

The hypothesis: a recipe (here the pre-training dataset) moves where a task rises against the pre-training
loss and where it starts, not how steeply or how far it rises. So per task one sigmoid shape is fitted on
every dataset's training runs at once: `k` (slope) and `headroom` (the rise, a = headroom (1 - b)) shared,
`b` (floor) and `L0` (midpoint) per dataset; variants share other subsets. Against the shipped step 2 (a
sigmoid per dataset and task), on choose_step2.py's splits: "inside" (11M-154M fitted, the 412M runs
held out; the choice is made here) and "targets" (11M-412M fitted, the 1.4B and 6.9B runs held out);
step 2 alone at the held-out runs' actual loss, and the chain (step 1 L(N, D) per dataset, as
choose_step2.chain, step 2 at its prediction). Mean relative error over task x held-out run, avg46's
beside. The first variant (slope and rise shared) became `fit.scaling.ladder.shared_shape` (docs/scaling-backtests.md).

    PYTHONPATH=workflow python resources/public/mlfoundations-scaling/shared_step2.py
"""

import sys
from pathlib import Path

import polars as pl

sys.path.insert(0, str(Path(__file__).parent))
from choose_step2 import col, curve_of, errors, load, outer_splits  # noqa: E402 (beside this script)

from lmforecast.fits.scaling.chinchilla import fit_chinchilla  # noqa: E402
from lmforecast.fits.scaling.curves import fit_sigmoid, fit_sigmoid_shared, sigmoid  # noqa: E402

VARIANTS = {  # name -> the parameters shared by a task's datasets (the first is the setting's: SHARED_SHAPE)
    "shared headroom, k": {"headroom", "k"},
    "shared b, headroom, k": {"b", "headroom", "k"},
    "shared b, k": {"b", "k"},
    "shared k": {"k"},
}


def curve_of_shared(curve):
    """sigmoid()'s arguments of a fit_sigmoid_shared curve (which also carries its headroom)."""
    return {name: curve[name] for name in ("a", "k", "L0", "b")}


def measure(cfg, frame):
    """Rows (split, where, shape, task, run, rel_error): step 2 at the actual loss ("actual") and the chain."""
    rows = []
    for split, train, test, families in outer_splits(cfg, frame):
        step1 = {}
        for fam in families:
            tr, he = train.filter(pl.col("family") == fam), test.filter(pl.col("family") == fam)
            p = fit_chinchilla(col(tr, "n_params"), col(tr, "tokens"), col(tr, "loss"), n_bootstrap=0, n_starts=10).params
            step1[fam] = p["E"] + p["A"] / col(he, "n_params") ** p["alpha"] + p["B"] / col(he, "tokens") ** p["beta"]
        for task in cfg["fit"]["scaling"]["tasks"]:
            groups, starts, held = [], [], []
            for fam in families:
                tr = train.filter((pl.col("family") == fam) & pl.col(f"score:{task}").is_not_null())
                groups.append((col(tr, "loss"), col(tr, f"score:{task}")))
                starts.append(fit_sigmoid(*groups[-1]))
                held.append((fam, test.filter(pl.col("family") == fam)))
            curves = {"per dataset (shipped)": [curve_of(s) for s in starts]}
            curves |= {
                name: [curve_of_shared(c) for c in fit_sigmoid_shared(groups, shared)] for name, shared in VARIANTS.items()
            }
            for shape, per_family in curves.items():
                for (fam, he), c in zip(held, per_family):
                    actual = col(he, f"score:{task}")
                    for where, x in (("actual", col(he, "loss")), ("chain", step1[fam])):
                        rows.extend(
                            {"split": split, "where": where, "shape": shape, "task": task, "run": r, "rel_error": e}
                            for r, e in zip(he["run"], errors(sigmoid(x, **c), actual))
                        )
    return pl.DataFrame(rows)


if __name__ == "__main__":
    errs = measure(*load())
    avg46 = pl.col("rel_error").filter(pl.col("task") == "avg46").mean().alias("avg46")
    summary = errs.group_by("where", "split", "shape").agg(pl.col("rel_error").mean(), avg46, pl.len())
    with pl.Config(tbl_rows=60, fmt_str_lengths=40):
        for where in ("actual", "chain"):
            print("step 2 at the held-out runs' actual loss" if where == "actual" else "the chain: step 2 at step 1's prediction")
            table = summary.filter(pl.col("where") == where).pivot(on="split", index="shape", values=["rel_error", "avg46"])
            print(table.sort("rel_error_inside"))
        per_task = errs.filter(pl.col("where") == "chain").group_by("split", "shape", "task").agg(pl.col("rel_error").mean())
        print(per_task.pivot(on="shape", index=["split", "task"], values="rel_error").sort("split", "task"))
