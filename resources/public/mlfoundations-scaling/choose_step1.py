"""The back-tests that first chose the example's ladder.step1 (params_tokens, kept until a second inside split was
pooled with this one: docs/scaling-backtests.md, last section) over Gadre et al.'s tied law
(params_tokens_tied), and that bound what a chain through the pre-training loss can reach on this set.

Two splits of the example's runs, per dataset: "inside" (the runs below 1B only: 11M-154M fitted, the
412M runs predicted; the choice is made here) and "targets" (11M-412M fitted, the 1.4B and 6.9B runs
predicted; measured after). Part 1: `direct`, `ladder` and their `ensemble` with each step 1 (mean
relative error over tasks x held-out runs, on avg46, intervals covering, mean width, the ladder's
loss error). Part 2: step 2 alone, the shapes tried for it, fitted on the training runs' final
checkpoints and evaluated at the held-out runs' actual loss ("oracle") and at the ladder's predicted
loss: the sigmoid (shipped), Gadre et al.'s Err(L) = eps - k exp(-gamma L), the sigmoid with its floor
at chance, with its ceiling at 1, both, and one sigmoid per task pooled over the three datasets.

    PYTHONPATH=workflow python resources/public/mlfoundations-scaling/choose_step1.py [BOOTSTRAP]
"""

import sys

import lmfit
import numpy as np
import polars as pl
import yaml

from lmforecast.fits.scaling import ScalingSettings
from lmforecast.fits.scaling.backtest import backtest
from lmforecast.fits.scaling.curves import FitError, _fit, fit_sigmoid, sigmoid
from lmforecast.fits.scaling.frames import checkpoint_frame
from lmforecast.measure.imports import import_tables

STEP1 = ("params_tokens", "params_tokens_tied")
CONFIG = "config/examples/mlfoundations-scaling.yaml"


def splits(cfg, tables):
    """split -> (tables, held-out runs, largest fitted size)."""
    small = [r["name"] for r in cfg["import"]["runs"] if r["n_params"] < 1e9]
    inside = {k: (v.filter(pl.col("run").is_in(small)) if "run" in v.columns else v) for k, v in tables.items()}
    return {
        "inside": (inside, [r for r in small if "-412M-" in r], 3e8),
        "targets": (tables, cfg["fit"]["scaling"]["holdout"], 1e9),
    }


def part1(cfg, parts, bootstrap):
    width = (pl.col("score_hi") - pl.col("score_lo")).mean().alias("width")
    loss = ((pl.col("loss_pred") - pl.col("loss_actual")).abs() / pl.col("loss_actual")).mean().alias("loss_error")
    avg46 = pl.col("rel_error").filter(pl.col("task") == "avg46").mean().alias("avg46")
    for split, (tables, held, _) in parts.items():
        for step1 in STEP1:
            sc = cfg["fit"]["scaling"] | {"bootstrap": bootstrap, "predictors": ["direct", "ladder", "ensemble"], "holdout": held}
            sc["ladder"] = sc["ladder"] | {"step1": step1}
            _, preds, _ = backtest(tables, ScalingSettings.from_dict(sc), workers=2)
            stats = preds.group_by("predictor").agg(
                pl.col("rel_error").mean(), avg46, pl.col("covered").sum(), pl.len(), width, loss
            )
            print(split, step1, stats.sort("predictor"), flush=True)


def gadre_error(x, eps, k, gamma):
    """Accuracy = 1 - Err(L), Err(L) = eps - k exp(-gamma L) (Gadre et al. 2024, eq. 4)."""
    return 1 - eps + k * np.exp(-gamma * x)


def fit_gadre(x, y):
    model, best = lmfit.Model(gadre_error), None
    for gamma in (0.5, 1.0, 2.0):
        params = model.make_params(eps=1 - y.min() + 0.1, k=1.0, gamma=gamma)
        params["eps"].set(min=0, max=1)
        params["k"].set(min=0)
        params["gamma"].set(min=1e-3, max=20)
        result = _fit(model, y, params, x=x)
        best = result if best is None or result.chisqr < best.chisqr else best
    return best


def fit_bounded_sigmoid(x, y, floor=None, ceiling=None):
    """fit_sigmoid's curve with b fixed at `floor` and/or a + b fixed at `ceiling`."""
    model, spread, best = lmfit.Model(sigmoid), float(np.std(x)), None
    for k in (1.0, 4.0):
        for q in np.quantile(x, [0.25, 0.5, 0.75]):
            params = model.make_params()
            params["b"].set(value=float(y.min()) if floor is None else floor, min=0, max=1, vary=floor is None)
            if ceiling is None:
                params.add("headroom", value=0.5, min=0, max=1)
                params["a"].set(expr="headroom * (1 - b)")
            else:
                params["a"].set(expr=f"{ceiling} - b")
            params["k"].set(value=-k / spread, max=0, min=-1e3 / spread)
            params["L0"].set(value=q, min=x.min() - 3 * spread, max=x.max() + 3 * spread)
            result = _fit(model, y, params, x=x)
            best = result if best is None or result.chisqr < best.chisqr else best
    return best


def part2(cfg, parts):
    col = lambda df, c: df[c].to_numpy().astype(float)  # noqa: E731
    rows = []
    for split, (tables, held, top) in parts.items():
        sc = cfg["fit"]["scaling"] | {"bootstrap": 0, "predictors": ["ladder"], "holdout": held, "ensemble_members": None}
        _, preds, _ = backtest(tables, ScalingSettings.from_dict(sc))
        predicted = preds.select("run", "loss_pred").unique()
        finals = checkpoint_frame(tables, ScalingSettings.from_dict(sc)).filter(pl.col("is_final"))
        tasks = [c[6:] for c in finals.columns if c.startswith("score:")]
        train, test = finals.filter(pl.col("n_params") < top), finals.filter(pl.col("run").is_in(held)).join(predicted, on="run")
        for task in tasks:
            for family in [*sorted(train["family"].unique()), "pooled"]:
                fit_rows = train if family == "pooled" else train.filter(pl.col("family") == family)
                fit_rows = fit_rows.filter(pl.col(f"score:{task}").is_not_null())
                x, y, chance = col(fit_rows, "loss"), col(fit_rows, f"score:{task}"), float(fit_rows[f"chance:{task}"][0])
                shapes = (
                    {"sigmoid (pooled)": lambda: fit_sigmoid(x, y)}
                    if family == "pooled"
                    else {
                        "sigmoid": lambda: fit_sigmoid(x, y),
                        "Gadre exp": lambda: fit_gadre(x, y),
                        "floor chance": lambda: fit_bounded_sigmoid(x, y, floor=chance),
                        "ceiling 1": lambda: fit_bounded_sigmoid(x, y, ceiling=1.0),
                        "floor chance, ceiling 1": lambda: fit_bounded_sigmoid(x, y, floor=chance, ceiling=1.0),
                    }
                )
                held_rows = test if family == "pooled" else test.filter(pl.col("family") == family)
                actual = col(held_rows, f"score:{task}")
                for shape, fit in shapes.items():
                    try:
                        result = fit()
                    except FitError:
                        continue
                    for at in ("loss", "loss_pred"):
                        error = np.abs(result.eval(x=col(held_rows, at)) - actual) / actual
                        rows += [{"split": split, "shape": shape, "at": at, "task": task, "rel_error": e} for e in error]
    table = (
        pl.DataFrame(rows)
        .group_by("split", "shape", "at")
        .agg(pl.col("rel_error").mean(), pl.col("rel_error").filter(pl.col("task") == "avg46").mean().alias("avg46"), pl.len())
    )
    with pl.Config(tbl_rows=50):
        print(table.sort("split", "at", "shape"))


if __name__ == "__main__":  # the back-test's worker processes are spawned
    bootstrap = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    cfg = yaml.safe_load(open(CONFIG))
    tables = {k: pl.from_arrow(v) for k, v in import_tables(cfg["import"]).items()}
    parts = splits(cfg, tables)
    part2(cfg, parts)
    part1(cfg, parts, bootstrap)
