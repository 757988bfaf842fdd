"""The back-test inside a public ladder: its runs below a size only, their largest rung held out, so that
choices (predictors, settings) are made without the large targets. Prints each predictor's mean relative
error, interval coverage and mean interval width, overall and per task.

    PYTHONPATH=workflow python resources/public/inside_ladder.py CONFIG MAX_PARAMS RUNG PREDICTORS BOOTSTRAP [SETTINGS]
    # e.g. config/examples/mlfoundations-scaling.yaml 1e9 -412M- direct,flp,chinchilla,ladder,ensemble 10
    #      config/examples/pythia-evals.yaml 5e9 -2.8b direct,ladder,ensemble 100 '{"interval": "prediction"}'
# SETTINGS: JSON merged into the config's fit.scaling (a setting back-tested against the shipped one)
"""

import json
import sys

import polars as pl
import yaml

from lmforecast.fits.scaling import ScalingSettings
from lmforecast.fits.scaling.backtest import backtest
from lmforecast.measure.imports import import_tables

if __name__ == "__main__":  # the back-test's worker processes are spawned
    path, max_params, rung, predictors, bootstrap = sys.argv[1:6]
    cfg = yaml.safe_load(open(path))
    small = [r["name"] for r in cfg["import"]["runs"] if r["n_params"] < float(max_params)]
    tables = {k: pl.from_arrow(v) for k, v in import_tables(cfg["import"]).items()}
    tables = {k: (v.filter(pl.col("run").is_in(small)) if "run" in v.columns else v) for k, v in tables.items()}
    held = [r for r in small if rung in r]
    settings = json.loads(sys.argv[6]) if len(sys.argv) > 6 else {}
    sc = cfg["fit"]["scaling"] | settings | {"bootstrap": int(bootstrap), "predictors": predictors.split(","), "holdout": held}
    _, preds, report = backtest(tables, ScalingSettings.from_dict(sc), workers=2)
    print("\n".join(report))
    width = (pl.col("score_hi") - pl.col("score_lo")).mean().alias("width")
    stats = [pl.col("rel_error").mean(), pl.col("covered").mean(), width, pl.len()]
    with pl.Config(tbl_rows=100):
        print(preds.group_by("predictor").agg(*stats).sort("rel_error"))
        print(
            preds.group_by("task", "predictor")
            .agg(pl.col("rel_error").mean())
            .pivot(on="predictor", index="task", values="rel_error")
        )
