"""A choice made inside a public ladder, with its uncertainty: the same back-test as inside_ladder.py (the ladder's runs
below a size, their largest rung held out) run with two settings, each predictor's mean relative error under the
second minus under the first, over the (run, task) pairs both predicted, with its 95% interval from a two-way
bootstrap over the held-out runs and tasks, paired (lmforecast.fits.scaling.evaluation.compare): an interval that
holds 0 means that the ladder could not tell the settings apart.

    PYTHONPATH=workflow python resources/public/paired_choice.py CONFIG MAX_PARAMS RUNG PREDICTORS BOOTSTRAP A B
    # e.g. config/examples/pythia-evals.yaml 5e9 -2.8b direct,ladder,ensemble 0 \\
    #      '{"ladder": {"feature": "loss", "shared_shape": false}}' '{}'
#    MAX_PARAMS and RUNG may list several inside splits (comma-separated, paired in order), pooled: a rolling origin
# A, B: JSON merged into the config's fit.scaling ('{}': the shipped settings; it may set `predictors`)
"""

import json
import sys
from pathlib import Path

import polars as pl

sys.path.insert(0, str(Path(__file__).parent))
from choose_defaults import backtest_inside, splits  # noqa: E402 (beside this script: the inside splits)

from lmforecast.fits.scaling.evaluation import compare  # noqa: E402

if __name__ == "__main__":  # the back-test's worker processes are spawned
    path, max_params, rung, predictors, bootstrap, *settings = sys.argv[1:]
    labelled, names = [], []
    for label, extra in zip("AB", settings):
        sc = {"bootstrap": int(bootstrap), "predictors": predictors.split(",")}
        sc |= json.loads(extra)  # may set the predictors too (e.g. the ensemble without a member)
        preds, _ = backtest_inside(path, splits(max_params, rung), sc)
        names.append(set(preds["predictor"]))
        labelled.append(preds.with_columns(pl.col("predictor") + f" ({label})"))
    print("A:", settings[0], "\nB:", settings[1])
    with pl.Config(tbl_rows=-1, tbl_cols=-1, fmt_str_lengths=40):
        print(compare(pl.concat(labelled), [(f"{n} (B)", f"{n} (A)") for n in sorted(names[0] & names[1])]))
