"""The back-test inside a public ladder: its runs below a size only, their largest rung held out, so that
choices (predictors, settings) are made without the large targets. Prints each predictor's mean relative
error, interval coverage and mean interval width, overall (with 95% intervals over the held-out runs and tasks,
lmforecast.fits.scaling.evaluation.summary) and per task; and how well each ranked the families' runs where the held-out
rung has several at one scale (ranking_backtest).

    PYTHONPATH=workflow python resources/public/inside_ladder.py CONFIG MAX_PARAMS RUNG PREDICTORS BOOTSTRAP [SETTINGS]
    # e.g. config/examples/mlfoundations-scaling.yaml 1e9 -412M- direct,flp,chinchilla,ladder,ensemble 10
    #      config/examples/pythia-evals.yaml 5e9 -2.8b direct,ladder,ensemble 100 '{"interval": "prediction"}'
    #      config/examples/mlfoundations-scaling.yaml 1e9,2e8 -412M-,-154M- ...  (two origins, pooled)
# SETTINGS: JSON merged into the config's fit.scaling (a setting back-tested against the shipped one)
"""

import json
import sys
from pathlib import Path

import polars as pl

sys.path.insert(0, str(Path(__file__).parent))
from choose_defaults import backtest_inside, splits  # noqa: E402 (beside this script: the inside splits)

from lmforecast.fits.scaling.evaluation import ranking_backtest, summary  # noqa: E402

if __name__ == "__main__":  # the back-test's worker processes are spawned
    path, max_params, rung, predictors, bootstrap = sys.argv[1:6]
    settings = json.loads(sys.argv[6]) if len(sys.argv) > 6 else {}
    settings |= {"bootstrap": int(bootstrap), "predictors": predictors.split(",")}
    preds, report = backtest_inside(path, splits(max_params, rung), settings)
    print("\n".join(report))
    width = (pl.col("score_hi") - pl.col("score_lo")).mean().alias("width")
    stats = [pl.col("rel_error").mean(), pl.col("covered").mean(), width, pl.len()]
    with pl.Config(tbl_rows=100, tbl_cols=-1, tbl_width_chars=400):
        print(preds.group_by("predictor").agg(*stats).sort("rel_error"))
        print(summary(preds))
        print(
            preds.group_by("task", "predictor")
            .agg(pl.col("rel_error").mean())
            .pivot(on="predictor", index="task", values="rel_error")
        )
        for table in ranking_backtest(preds):
            print(table)
