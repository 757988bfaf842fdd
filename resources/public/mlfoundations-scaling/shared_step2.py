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

Then the issue's other candidate, a ceiling shared across tasks (issue 23, twelfth session): every task and
dataset fitted at once (fit_keyed), the rise `headroom` (the share of the way from the floor to 1 a task climbs)
one for all tasks, or one per dataset, beside the slope shared per task as shipped, or one slope for all too.

    PYTHONPATH=workflow python resources/public/mlfoundations-scaling/shared_step2.py
"""

import sys
from pathlib import Path

import lmfit
import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).parent))
from choose_step2 import col, curve_of, errors, load, outer_splits, step1_loss  # noqa: E402 (beside this script)

from lmforecast.fits.scaling.curves import (  # noqa: E402
    METHOD,
    _sigmoid_bounds,
    fit_sigmoid,
    fit_sigmoid_shared,
    sigmoid,
)

VARIANTS = {  # name -> the parameters shared by a task's datasets (the first is the setting's: SHARED_SHAPE)
    "shared headroom, k": {"headroom", "k"},
    "shared b, headroom, k": {"b", "headroom", "k"},
    "shared b, k": {"b", "k"},
    "shared k": {"k"},
}
ACROSS_TASKS = {  # name -> (key of headroom, key of k) given (task, dataset); b and L0 are each pair's own
    "headroom for all tasks, k per task": (lambda t, f: "all", lambda t, f: t),
    "headroom per dataset, k per task": (lambda t, f: f, lambda t, f: t),
    "headroom and k for all tasks": (lambda t, f: "all", lambda t, f: "all"),
}


def _own(task, dataset):
    """The key of a parameter that is each (task, dataset) pair's own (fit_keyed): the floor and the midpoint."""
    return (task, dataset)


def curve_of_shared(curve):
    """sigmoid()'s arguments of a fit_sigmoid_shared curve (which also carries its headroom)."""
    return {name: curve[name] for name in ("a", "k", "L0", "b")}


def fit_keyed(groups, starts, keys, weights=None):
    """Sigmoids of every (task, dataset) in `groups` {pair: (x, y)} fitted at once, each parameter shared by the
    pairs its key function in `keys` (name -> f(task, dataset)) maps alike; started at the median of `starts`
    {pair: curve} over each key, bounded as fit_sigmoid on all points; each point's squared residual weighted by
    `weights` {pair: array} where given. Returns {pair: sigmoid()'s arguments}."""
    bounds = _sigmoid_bounds(np.concatenate([x for x, _ in groups.values()]))
    params, index = lmfit.Parameters(), {}  # (name, key) -> its lmfit parameter's name
    for name, (lo, hi) in bounds.items():
        values = {}
        for pair in groups:
            values.setdefault(keys[name](*pair), []).append(min(hi, max(lo, starts[pair][name])))
        for key, v in values.items():
            index[(name, key)] = f"{name}_{len(index)}"
            params.add(index[(name, key)], value=float(np.median(v)), min=lo, max=hi)

    def curve(p, pair):
        v = {name: p[index[(name, keys[name](*pair))]].value for name in bounds}
        return {"a": v["headroom"] * (1 - v["b"]), "k": v["k"], "L0": v["L0"], "b": v["b"]}

    def residual(p):  # least squares of w r^2: the residual scaled by sqrt(w)
        return np.concatenate(
            [np.sqrt(weights[pair] if weights else 1.0) * (sigmoid(x, **curve(p, pair)) - y) for pair, (x, y) in groups.items()]
        )

    result = lmfit.minimize(residual, params, method=METHOD)
    return {pair: curve(result.params, pair) for pair in groups}


def measure(cfg, frame):
    """Rows (split, where, shape, task, run, rel_error): step 2 at the actual loss ("actual") and the chain."""
    rows = []
    tasks = cfg["fit"]["scaling"]["tasks"]
    for split, train, test, families in outer_splits(cfg, frame):
        held = {fam: test.filter(pl.col("family") == fam) for fam in families}
        step1 = {fam: step1_loss(train.filter(pl.col("family") == fam), held[fam]) for fam in families}
        groups = {}  # (task, dataset) -> the training runs' (loss, score)
        for task in tasks:
            for fam in families:
                tr = train.filter((pl.col("family") == fam) & pl.col(f"score:{task}").is_not_null())
                groups[(task, fam)] = (col(tr, "loss"), col(tr, f"score:{task}"))
        curves = {"per dataset (before shared_shape)": {pair: curve_of(fit_sigmoid(*xy)) for pair, xy in groups.items()}}
        for name, shared in VARIANTS.items():
            curves[name] = {}
            for task in tasks:
                pairs = [(task, fam) for fam in families]
                fits = fit_sigmoid_shared([groups[p] for p in pairs], shared)
                curves[name] |= {p: c for p, c in zip(pairs, fits)}
        # the across-task fits start from the setting's per-task fits (the first variant's; they carry their headroom)
        starts = curves[next(iter(VARIANTS))]
        for name, (headroom, k) in ACROSS_TASKS.items():
            curves[name] = fit_keyed(groups, starts, {"headroom": headroom, "k": k, "b": _own, "L0": _own})
        for shape, per_pair in curves.items():
            for (task, fam), c in per_pair.items():
                he, actual = held[fam], col(held[fam], f"score:{task}")
                c = curve_of_shared(c)
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
