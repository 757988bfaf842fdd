"""The ensemble's weights from two inner folds (rolling origin) instead of one: does a second back-test inside the
ladder steady the weights?

The shipped ensemble weighs each member per family and task by the inverse of its mean squared error on one back-test
inside the ladder (fold 1: the training runs without their largest rung predict that rung). Fold 2 goes one rung
lower: the runs below fold 1's held rung, without their own largest rung, predict it (the inner back-test of a
back-test whose targets are fold 1's held rung). The MSE pooled over both folds' squared errors, where fold 2 has
every member; the same members' full-data predictions otherwise. Bootstrap 0: point errors only. Measured in issue
23's twelfth session (docs/scaling-backtests.md): not taken.

    PYTHONPATH=workflow python resources/public/ensemble_folds.py CONFIG MAX_PARAMS RUNG MEMBERS
    # config/examples/mlfoundations-scaling.yaml 1e9 -412M- direct,ladder
    # config/examples/pythia-evals.yaml 5e9 -2.8b direct,flat,ladder
"""

import sys
from pathlib import Path

import numpy as np
import polars as pl
import yaml

sys.path.insert(0, str(Path(__file__).parent))
import ensemble_weights as recorded  # noqa: E402 (beside this script: its recording of ensemble.combine)

from lmforecast.fits.scaling import ScalingSettings, ensemble  # noqa: E402
from lmforecast.fits.scaling.backtest import backtest  # noqa: E402
from lmforecast.measure.imports import import_tables  # noqa: E402


def inner_records(tables, runs, settings):
    """(the back-test's predictions, {(family, task): what ensemble.combine saw}) on `runs` alone."""
    recorded.RECORDS.clear()
    kept = {k: (v.filter(pl.col("run").is_in(runs)) if "run" in v.columns else v) for k, v in tables.items()}
    _, preds, _ = backtest(kept, ScalingSettings.from_dict(settings), workers=2)
    return preds, {(r["family"], r["task"]): r for r in recorded.RECORDS}


if __name__ == "__main__":  # the back-test's worker processes are spawned
    ensemble.combine = recorded._recording
    path, max_params, rung, members = sys.argv[1:5]
    cfg = yaml.safe_load(open(path))
    size = {r["name"]: r["n_params"] for r in cfg["import"]["runs"]}
    small = [r for r, n in size.items() if n < float(max_params)]
    tables = {k: pl.from_arrow(v) for k, v in import_tables(cfg["import"]).items()}
    sc = cfg["fit"]["scaling"] | {"bootstrap": 0, "predictors": [*members.split(","), "ensemble"]}
    held = [r for r in small if rung in r]
    preds, fold1 = inner_records(tables, small, sc | {"holdout": held})
    train = [r for r in small if r not in held]
    top = max(size[r] for r in train)
    _, fold2 = inner_records(tables, train, sc | {"holdout": [r for r in train if size[r] == top]})
    one, two, with_fold2 = [], [], 0
    for key, r1 in fold1.items():
        mse = {m: float(np.mean(v)) for m, v in r1["sq"].items()}
        one += recorded._rel_errors(r1, mse)
        r2 = fold2.get(key)
        if r2 and set(r2["sq"]) >= set(mse):
            with_fold2 += 1
            mse = {m: float(np.mean(np.concatenate([r1["sq"][m], r2["sq"][m]]))) for m in mse}
        two += recorded._rel_errors(r1, mse)
    print(
        f"ensemble as shipped (the back-test's rows): {preds.filter(pl.col('predictor') == 'ensemble')['rel_error'].mean():.4f}"
    )
    print(f"one fold: {np.mean(one):.4f}; two folds: {np.mean(two):.4f} ({with_fold2} of {len(fold1)} family x task have fold 2)")
