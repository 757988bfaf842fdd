"""The back-test inside the ladder that chose the shipped ladder.anchor (false): the runs below 1B only,
the 412M runs (the largest rung) held out, the ladder fitted with and without the anchor on 11M-154M.

    PYTHONPATH=workflow python resources/public/mlfoundations-scaling/choose_ladder.py
"""

import polars as pl
import yaml

from lmforecast.fits.scaling import ScalingSettings
from lmforecast.fits.scaling.backtest import backtest
from lmforecast.measure.imports import import_tables

cfg = yaml.safe_load(open("config/examples/mlfoundations-scaling.yaml"))
small = [r["name"] for r in cfg["import"]["runs"] if r["n_params"] < 1e9]
b = {k: pl.from_arrow(v) for k, v in import_tables(cfg["import"]).items()}
b = {k: (v.filter(pl.col("run").is_in(small)) if "run" in v.columns else v) for k, v in b.items()}
held = [r for r in small if "-412M-" in r]
for anchor in (True, False):  # measured 2026-11-29: true 8.8% (avg46 9.8%), false 5.8% (avg46 2.7%)
    sc = cfg["fit"]["scaling"] | {"bootstrap": 0, "predictors": ["ladder"], "holdout": held}
    sc["ladder"] = sc["ladder"] | {"anchor": anchor}
    _, preds, report = backtest(b, ScalingSettings.from_dict(sc))
    print(
        "anchor",
        anchor,
        report[:3],
        preds.height,
        "all tasks",
        preds["rel_error"].mean(),
        "avg46",
        preds.filter(pl.col("task") == "avg46")["rel_error"].mean(),
        flush=True,
    )
