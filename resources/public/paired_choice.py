"""A choice made inside a public ladder, with its uncertainty: the same back-test as inside_ladder.py (the ladder's runs
below a size, their largest rung held out) run with two settings, each predictor's mean relative error under the
second minus under the first, over the (run, task) pairs both predicted, with its 95% interval from a two-way
bootstrap over the held-out runs and tasks, paired (lmforecast.fits.scaling.evaluation.compare): an interval that
holds 0 means that the ladder could not tell the settings apart.

    PYTHONPATH=workflow python resources/public/paired_choice.py CONFIG MAX_PARAMS RUNG PREDICTORS BOOTSTRAP A B
    # e.g. config/examples/pythia-evals.yaml 5e9 -2.8b direct,ladder,ensemble 0 \\
    #      '{"ladder": {"feature": "loss", "shared_shape": false}}' '{}'
# A, B: JSON merged into the config's fit.scaling ('{}': the shipped settings; it may set `predictors`)
"""

import json
import sys

import polars as pl
import yaml

from lmforecast.fits.scaling import ScalingSettings
from lmforecast.fits.scaling.backtest import backtest
from lmforecast.fits.scaling.evaluation import compare
from lmforecast.measure.imports import import_tables

if __name__ == "__main__":  # the back-test's worker processes are spawned
    path, max_params, rung, predictors, bootstrap, *settings = sys.argv[1:]
    cfg = yaml.safe_load(open(path))
    small = [r["name"] for r in cfg["import"]["runs"] if r["n_params"] < float(max_params)]
    tables = {k: pl.from_arrow(v) for k, v in import_tables(cfg["import"]).items()}
    tables = {k: (v.filter(pl.col("run").is_in(small)) if "run" in v.columns else v) for k, v in tables.items()}
    held = [r for r in small if rung in r]
    runs = {}
    for label, extra in zip("AB", settings):
        sc = cfg["fit"]["scaling"] | {"bootstrap": int(bootstrap), "predictors": predictors.split(","), "holdout": held}
        sc |= json.loads(extra)  # may set the predictors too (e.g. the ensemble without a member)
        _, preds, _ = backtest(tables, ScalingSettings.from_dict(sc), workers=2)
        runs[label] = preds.with_columns(pl.col("predictor") + f" ({label})")
    preds = pl.concat(list(runs.values()))
    names = sorted(
        set(runs["A"]["predictor"].str.replace(r" \(A\)$", "")) & set(runs["B"]["predictor"].str.replace(r" \(B\)$", ""))
    )
    print("A:", settings[0], "\nB:", settings[1])
    with pl.Config(tbl_rows=-1, tbl_cols=-1, fmt_str_lengths=40):
        print(compare(preds, [(f"{n} (B)", f"{n} (A)") for n in names]))
