"""Step 1 with parameters shared across datasets: does L(N, D) = E + A/N^alpha + B/D^beta extrapolate better when a
task's three datasets (recipes) share some of its parameters (as step 2's slope and rise, shared_step2.py)?

Per variant, one Huber fit (the shipped objective, chinchilla.huber_objective) over every dataset's training runs,
the parameters named shared, the others per dataset, by L-BFGS-B from the per-dataset fits (a shared parameter at
their mean; once more with each dataset's exponents for all). On choose_step2.py's splits ("inside": 11M-154M
fitted, the 412M runs held out, where choices are made; "targets": 11M-412M fitted, the 1.4B and 6.9B runs held
out): the held-out runs' loss error, and the chain's (step 2 as shipped: the sigmoid with its slope and rise shared,
at step 1's prediction). Mean relative error over held-out runs (the loss) or task x held-out run (the chain).
Measured in issue 23's eleventh session (docs/scaling-backtests.md): no sharing beat the per-dataset fit inside.

    PYTHONPATH=workflow python resources/public/mlfoundations-scaling/shared_step1.py
"""

import sys
from pathlib import Path

import numpy as np
import polars as pl
from scipy.optimize import minimize

sys.path.insert(0, str(Path(__file__).parent))
from choose_step2 import col, errors, load, outer_splits  # noqa: E402 (beside this script)

from lmforecast.fits.scaling.chinchilla import _TOLERANCES, NAMES, fit_chinchilla, huber_objective  # noqa: E402
from lmforecast.fits.scaling.curves import fit_sigmoid_shared, sigmoid  # noqa: E402

VARIANTS = {  # name -> the parameters (chinchilla.NAMES: a = log A, b = log B, e = log E) shared by the datasets
    "per dataset (shipped)": set(),
    "alpha, beta": {"alpha", "beta"},
    "alpha": {"alpha"},
    "beta": {"beta"},
    "a, alpha": {"a", "alpha"},
    "b, beta": {"b", "beta"},
    "e (the irreducible loss)": {"e"},
    "alpha, beta, e": {"alpha", "beta", "e"},
}


def fit_shared(datas, shared, starts):
    """datas [(log N, log D, log L)] per dataset -> each dataset's theta (NAMES), `shared` common to all."""
    own = [n for n in NAMES if n not in shared]
    common = sorted(shared)

    def unpack(z):
        values = dict(zip(common, z))
        return [
            np.array([{**values, **dict(zip(own, z[len(common) + f * len(own) :]))}[n] for n in NAMES]) for f in range(len(datas))
        ]

    def objective(z):
        total, grad = 0.0, np.zeros_like(z)
        for f, (theta, data) in enumerate(zip(unpack(z), datas)):
            loss, g = huber_objective(theta, *data, 1e-3)
            g = dict(zip(NAMES, g))
            total += loss
            grad[: len(common)] += [g[n] for n in common]
            grad[len(common) + f * len(own) : len(common) + (f + 1) * len(own)] += [g[n] for n in own]
        return total, grad

    best = None
    for thetas in starts:
        z = [np.mean([t[NAMES.index(n)] for t in thetas]) for n in common]
        z += [t[NAMES.index(n)] for t in thetas for n in own]
        result = minimize(objective, np.array(z), jac=True, method="L-BFGS-B", options=_TOLERANCES)
        best = result if best is None or result.fun < best.fun else best
    return unpack(best.x)


def law(theta, n, d):
    a, b, e, alpha, beta = theta
    return np.exp(e) + np.exp(a) / n**alpha + np.exp(b) / d**beta


def row(split, step1, what, task, run, rel_error):
    return {"split": split, "step1": step1, "what": what, "task": task, "run": run, "rel_error": rel_error}


def measure(cfg, frame):
    rows = []
    for split, train, test, families in outer_splits(cfg, frame):
        tr = [train.filter(pl.col("family") == f) for f in families]
        he = [test.filter(pl.col("family") == f) for f in families]
        datas = [tuple(np.log(col(t, c)) for c in ("n_params", "tokens", "loss")) for t in tr]
        own = []
        for t in tr:
            p = fit_chinchilla(col(t, "n_params"), col(t, "tokens"), col(t, "loss"), n_bootstrap=0, n_starts=10).params
            own.append(
                np.array([np.log(max(p["A"], 1e-300)), np.log(max(p["B"], 1e-300)), np.log(p["E"]), p["alpha"], p["beta"]])
            )
        starts = [own] + [[np.concatenate([t[:3], o[3:]]) for t in own] for o in own]
        step1 = {}
        for name, shared in VARIANTS.items():
            thetas = fit_shared(datas, shared, starts) if shared else own
            step1[name] = [law(th, col(h, "n_params"), col(h, "tokens")) for th, h in zip(thetas, he)]
            for pred, h in zip(step1[name], he):
                rows += [row(split, name, "loss", "loss", r, e) for r, e in zip(h["run"], errors(pred, col(h, "loss")))]
        for task in cfg["fit"]["scaling"]["tasks"]:
            groups = [
                (col(t, "loss"), col(t, f"score:{task}")) for t in (t.filter(pl.col(f"score:{task}").is_not_null()) for t in tr)
            ]
            curves = fit_sigmoid_shared(groups)
            for name in VARIANTS:
                for pred, h, c in zip(step1[name], he, curves):
                    score = sigmoid(pred, c["a"], c["k"], c["L0"], c["b"])
                    actual = col(h, f"score:{task}")
                    rows += [row(split, name, "chain", task, r, e) for r, e in zip(h["run"], errors(score, actual))]
    return pl.DataFrame(rows)


if __name__ == "__main__":
    errs = measure(*load())
    avg46 = pl.col("rel_error").filter(pl.col("task") == "avg46").mean().alias("avg46")
    summary = errs.group_by("what", "split", "step1").agg(pl.col("rel_error").mean(), avg46)
    with pl.Config(tbl_rows=40, fmt_str_lengths=40):
        for what in ("loss", "chain"):
            table = summary.filter(pl.col("what") == what).pivot(on="split", index="step1", values=["rel_error", "avg46"])
            print(f"{what}: mean relative error", table.sort("rel_error_inside"), sep="\n")
