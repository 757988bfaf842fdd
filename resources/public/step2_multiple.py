"""Over-training in the ladder's step 2: does the token multiple M = D/N (tokens over parameters, per
checkpoint) help as a second input of the sigmoid?

On mlfoundations the shipped ensemble's misses are the over-trained 1.4B runs, which at their actual loss
score above the smaller runs' sigmoid. Tried here: the sigmoid in an effective loss L - g (log M - m0),
m0 the fitted points' mean log M (g >= 0, bounded; g = 0 is the shipped sigmoid; the same curve as an L0
linear in log M: a / (1 + exp(-k (L - L0 - g (log M - m0)))) + b), and, as a diagnostic only, g of
either sign. Two parts, on both public sets and both splits (the "inside" split chooses, the "targets"
split is measured after):

1. The shipped sigmoid's residuals (actual - fitted) at its own fitted points against log M, per family
   and task: the least-squares slope (accuracy per e-fold of M). On mlfoundations M varies across the
   runs of a size (x0.25-x32); on Pythia every run saw 300B tokens, so across runs log M = log 300B - log N
   (confounded with size) and within a run log M grows with the step (confounded with training progress
   and the learning-rate schedule): the slope is also given within runs (each run's mean removed).
2. Step 2 alone, fitted per family and task on the training runs' step-2 points (the ladder's: every
   checkpoint past `skip_fraction`), evaluated at the held-out runs' final M and at their actual loss
   ("actual") or at step 1's prediction (the project's `ladder` back-test with bootstrap 0: the full chain;
   its own score_pred is checked against the refitted shipped sigmoid's). Mean relative error over tasks
   x held-out runs, avg46 (mlfoundations) in brackets.

Measured (issue 23, seventh session; 12 min for both sets at load 1-4; --chains as noted):

- residual slope, mlfoundations (6 fits per task: 3 datasets x 2 splits): -0.016 (boolq, residual sd 0.06) to
  +0.005 accuracy per e-fold; positive in all 6 for arc_easy, piqa, lambada_openai; avg46 -0.0006 to +0.0003
  (negative in 5 of 6). Pythia: within +-0.0024 (within runs +-0.009) except wsc, +0.013 to +0.025.
- mean relative error, avg46 in brackets: inside at actual loss / chain, targets at actual loss / chain:
  mlfoundations shipped 4.5% (2.1%) / 5.8% (2.7%), 6.5% (3.9%) / 7.0% (3.8%); g >= 0 4.7% (2.0%) / 5.1% (2.6%),
  6.3% (4.3%) / 6.8% (4.2%); g of either sign 4.7% (2.2%) / 5.1% (3.2%), 6.7% (4.3%) / 7.0% (4.2%).
  Pythia shipped 3.6% / 3.7%, 4.1% / 3.9%; g >= 0 2.2% / 2.5%, 4.5% / 4.3%; either sign 2.3% / 2.9%, 4.5% / 4.6%.
  Pythia's inside gain is wsc's (chain 15.5% -> 5.9%; the other 7 tasks 2.04% -> 2.01%).
- fitted g, mean over tasks per family: mlfoundations inside c4 0.10, rpj 0.012, rw 0.068; Pythia 0.13-0.24
  (up to the bound 1 on some tasks).
- --chains mlfoundations direct,ladder,ensemble 20 (off / on): inside ensemble 4.8% (1.9%) 199/207 / 5.0% (2.0%)
  197/207, ladder 5.8% 124/207 / 5.1% 131/207; targets ensemble 6.4% (5.1%) 70/81 / 6.4% (5.5%) 72/81, ladder
  7.0% (3.8%) 55/81 / 6.8% (4.2%) 51/81. --chains pythia direct,ladder,ensemble 100: inside ensemble 3.5% 16/16
  / 2.7% 15/16, ladder 3.7% 11/16 / 2.5% 12/16; targets ensemble 3.73% 30/32 / 3.70% 29/32, ladder 3.9% 25/32 /
  4.3% 24/32. So mlfoundations leaves token_multiple off (its ensemble lost inside), Pythia sets it.

    PYTHONPATH=workflow python resources/public/step2_multiple.py [mlfoundations|pythia ...]
    PYTHONPATH=workflow python resources/public/step2_multiple.py --chains SET PREDICTORS BOOTSTRAP [inside|targets]

3. (--chains) The project's back-test with the example's settings and `ladder.token_multiple` off and on
   (the setting: the sigmoid in L - g (log M - m0), g >= 0), both splits: mean relative error, avg46,
   intervals covering, mean width, per predictor.
"""

import sys
from pathlib import Path

import numpy as np
import polars as pl
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from choose_defaults import below  # noqa: E402 (beside this script: the inside split)

from lmforecast.fits.scaling import ScalingSettings  # noqa: E402
from lmforecast.fits.scaling.backtest import backtest  # noqa: E402
from lmforecast.fits.scaling.curves import G_MAX, fit_sigmoid, fit_sigmoid_multiple  # noqa: E402
from lmforecast.fits.scaling.frames import checkpoint_frame  # noqa: E402
from lmforecast.measure.imports import import_tables  # noqa: E402

SETS = {  # name -> (config, size below which the inside split keeps runs, its held-out rung)
    "mlfoundations": ("config/examples/mlfoundations-scaling.yaml", 1e9, "-412M-"),
    "pythia": ("config/examples/pythia-evals.yaml", 5e9, "-2.8b"),
}


def splits(cfg, tables, max_params, rung):
    """split -> (tables, held-out runs): inside (runs below max_params, `rung` held out) and the targets."""
    return {"inside": below(cfg, tables, max_params, rung), "targets": (tables, cfg["fit"]["scaling"]["holdout"])}


def points(frame, lc):
    """The ladder's step-2 points: checkpoints past skip_fraction (moving_average is 1 in both examples)."""
    assert lc.moving_average == 1 and not lc.anchor, "the examples' ladder: no smoothing, no anchor"
    return frame.filter(pl.col("frac") > lc.skip_fraction).with_columns(
        (pl.col("tokens") / pl.col("n_params")).log().alias("logm")
    )


def col(df, name):
    return df[name].to_numpy().astype(float)


def slope(x, y):
    dx = x - x.mean()
    return float(dx @ (y - y.mean()) / (dx @ dx)) if dx @ dx > 0 else float("nan")


def run_set(name):
    path, max_params, rung = SETS[name]
    cfg = yaml.safe_load(open(path))
    tables = {k: pl.from_arrow(v) for k, v in import_tables(cfg["import"]).items()}
    trend_rows, rows, fits = [], [], []
    for split, (tabs, held) in splits(cfg, tables, max_params, rung).items():
        sc = cfg["fit"]["scaling"] | {"bootstrap": 0, "predictors": ["ladder"], "holdout": held, "ensemble_members": None}
        sc["ladder"] = sc["ladder"] | {"token_multiple": False}  # the shipped sigmoid's chain; the variants refitted here
        settings = ScalingSettings.from_dict(sc)
        _, preds, _ = backtest(tabs, settings, workers=2)
        frame = checkpoint_frame(tabs, settings).with_columns((pl.col("tokens") / pl.col("n_params")).log().alias("logm"))
        train = points(frame.filter(~pl.col("run").is_in(held)), settings.ladder)
        test = frame.filter(pl.col("is_final") & pl.col("run").is_in(held))
        for (family, task), p in preds.group_by("family", "task"):
            fam = train.filter((pl.col("family") == family)).drop_nulls(["loss", f"score:{task}"])
            x, y, logm = col(fam, "loss"), col(fam, f"score:{task}"), col(fam, "logm")
            m0 = float(logm.mean())
            plain, shifted = fit_sigmoid(x, y), fit_sigmoid_multiple(x, logm - m0, y)
            free = fit_sigmoid_multiple(x, logm - m0, y, g_min=-G_MAX)
            fits.append({"set": name, "split": split, "family": family, "task": task, "g": shifted.params["g"].value})
            fits[-1] |= {"g_free": free.params["g"].value, "n": len(x)}
            resid = y - plain.eval(x=x)
            within = fam.with_columns(pl.Series("r", resid)).with_columns(
                (pl.col("r") - pl.col("r").mean().over("run")).alias("rw"),
                (pl.col("logm") - pl.col("logm").mean().over("run")).alias("lw"),
            )
            trend_rows.append(
                {"set": name, "split": split, "family": family, "task": task, "slope": slope(logm, resid)}
                | {"slope_within_runs": slope(col(within, "lw"), col(within, "rw")), "resid_sd": float(resid.std())}
            )
            hp = test.filter(pl.col("family") == family).join(p.select("run", "loss_pred", "score_pred"), on="run").sort("run")
            actual, hl = col(hp, f"score:{task}"), col(hp, "logm") - m0
            check = np.abs(plain.eval(x=col(hp, "loss_pred")) - col(hp, "score_pred")).max()
            assert check < 1e-9, f"{name} {split} {family} {task}: refit differs from the back-test's ladder by {check}"
            for at in ("loss", "loss_pred"):
                xs = col(hp, at)
                for variant, pred in (
                    ("sigmoid (shipped)", plain.eval(x=xs)),
                    ("sigmoid in L - g log M, g >= 0", shifted.eval(x=xs, logm=hl)),
                    ("the same, g of either sign", free.eval(x=xs, logm=hl)),
                ):
                    err = np.abs(pred - actual) / actual
                    rows += [
                        {"set": name, "split": split, "at": at, "variant": variant, "task": task, "run": r, "rel_error": e}
                        for r, e in zip(hp["run"], err)
                    ]
    return pl.DataFrame(trend_rows), pl.DataFrame(rows), pl.DataFrame(fits)


def chains(name, predictors, bootstrap, only=None):
    """The project's back-test with the example's settings, ladder.token_multiple off and on, on both splits."""
    path, max_params, rung = SETS[name]
    cfg = yaml.safe_load(open(path))
    tables = {k: pl.from_arrow(v) for k, v in import_tables(cfg["import"]).items()}
    avg46 = pl.col("rel_error").filter(pl.col("task") == "avg46").mean().alias("avg46")
    width = (pl.col("score_hi") - pl.col("score_lo")).mean().alias("width")
    for split, (tabs, held) in splits(cfg, tables, max_params, rung).items():
        if only and split != only:
            continue
        for multiple in (False, True):
            sc = cfg["fit"]["scaling"] | {"bootstrap": bootstrap, "predictors": predictors, "holdout": held}
            sc["ladder"] = sc.get("ladder", {}) | {"token_multiple": multiple}
            _, preds, _ = backtest(tabs, ScalingSettings.from_dict(sc), workers=2)
            stats = preds.group_by("predictor").agg(pl.col("rel_error").mean(), avg46, pl.col("covered").sum(), pl.len(), width)
            print(f"== {name} {split}, token_multiple: {multiple}, bootstrap {bootstrap}\n{stats.sort('predictor')}", flush=True)


def main(names):
    avg46 = pl.col("rel_error").filter(pl.col("task") == "avg46").mean().alias("avg46")
    with pl.Config(tbl_rows=200, tbl_width_chars=200, float_precision=4):
        for name in names:
            trends, errors, fits = run_set(name)
            print(f"== {name}: residual slope against log M (accuracy per e-fold), per family and task")
            print(trends.sort("split", "family", "task"))
            print(
                trends.group_by("split", "family")
                .agg(
                    pl.col("slope").mean().alias("mean_slope"),
                    (pl.col("slope") > 0).sum().alias("n_positive"),
                    pl.col("slope_within_runs").filter(pl.col("slope_within_runs").is_not_nan()).mean().alias("mean_within"),
                    (pl.col("slope_within_runs").filter(pl.col("slope_within_runs").is_not_nan()) > 0)
                    .sum()
                    .alias("n_within_positive"),
                    pl.len(),
                )
                .sort("split", "family")
            )
            print(f"== {name}: fitted g (loss units per e-fold of M)")
            print(
                fits.group_by("split", "family")
                .agg(
                    pl.col("g").mean(),
                    (pl.col("g") > 1e-6).sum().alias("n_g_positive"),
                    pl.col("g_free").mean(),
                    pl.col("g_free").min().alias("g_free_min"),
                    pl.col("g_free").max().alias("g_free_max"),
                    pl.col("g_free").abs().max().alias("g_free_absmax"),
                )
                .sort("split", "family")
            )
            print(f"== {name}: step 2 at the held-out runs' actual loss (loss) / step 1's prediction (loss_pred)")
            print(
                errors.group_by("split", "at", "variant")
                .agg(pl.col("rel_error").mean(), avg46, pl.len())
                .sort("split", "at", "variant")
            )
            print(
                errors.filter(pl.col("at") == "loss_pred")
                .group_by("split", "task", "variant")
                .agg(pl.col("rel_error").mean())
                .pivot(on="variant", index=["split", "task"], values="rel_error")
                .sort("split", "task")
            )
            print(
                errors.group_by("split", "at", "variant", "run")
                .agg(pl.col("rel_error").mean(), avg46)
                .sort("split", "at", "run", "variant")
            )


if __name__ == "__main__":  # the back-test's worker processes are spawned
    if sys.argv[1:2] == ["--chains"]:  # --chains SET PREDICTORS BOOTSTRAP [SPLIT]
        chains(sys.argv[2], sys.argv[3].split(","), int(sys.argv[4]), *sys.argv[5:6])
    else:
        main(sys.argv[1:] or list(SETS))
