"""The `ensemble` predictor: the other predictors' forecasts combined, weighted by a back-test inside the ladder.

Inside each family, the training runs are back-tested once more: every member is fitted without the
largest rung (the runs with the most parameters), started from its full fit as a bootstrap refit is,
and predicts that rung. A member's weight on a task is the inverse of its mean squared error there
(the combination of forecasts of Bates and Granger, 1969), and the ensemble predicts the weighted
mean of the members' full-data predictions. Nothing of the held-out targets enters the weights.

Its 95% interval is calibrated by adding three spreads, as normal noise, to the weighted mean of each
bootstrap resample's member predictions (the same resamples for every member):
- across model choices: the weighted variance of the members' predictions;
- step 2's residual scatter: the members' score-fit residual standard deviation, weighted;
- extrapolation: the ensemble's own error on the inner back-test (root mean square), scaled by how
  far the target lies beyond the fitted rungs in log N relative to the inner held rung (an error that
  grows with the distance of the extrapolation; never scaled below 1).
"""

import math

import numpy as np
import polars as pl

from lmforecast.fits.scaling.curves import FitError
from lmforecast.fits.scaling.frames import held_normal, planned_mask

NAME = "ensemble"
WEIGHT_NOTE = "a weight from the back-test inside the ladder (inverse mean squared error), not fitted"


def inner_split(train: pl.DataFrame, min_runs: int):
    """(inner training rows, inner held-out final rows): the family's training runs without their largest rung."""
    top = train["n_params"].max()
    inner_train = train.filter(pl.col("n_params") < top)
    inner_held = train.filter(pl.col("is_final") & (pl.col("n_params") == top)).sort("run")
    n = inner_train["run"].n_unique()
    if n < min_runs:
        raise FitError(f"the back-test inside the ladder leaves {n} runs below the largest rung; need at least {min_runs}")
    return inner_train, inner_held


def weights(inner_scores: dict, actual: np.ndarray) -> dict:
    """member -> weight (summing to 1) from each member's inner back-test predictions of one task."""
    mse = {m: float(np.mean((np.asarray(s) - actual) ** 2)) for m, s in inner_scores.items() if np.all(np.isfinite(s))}
    if not mse:
        return {}
    floor = 1e-8  # a member exact on the inner rung would take every weight, with no division by 0
    inv = {m: 1.0 / max(e, floor) for m, e in mse.items()}
    total = sum(inv.values())
    return {m: v / total for m, v in inv.items()}


def _log_distance(n_target, n_fitted_max):
    return np.log(np.asarray(n_target, float) / n_fitted_max)


def combine(task, held, train, members: dict, inner: dict, inner_held, seed_noise, n_boot: int):
    """The ensemble's prediction of one task.

    `members`: name -> (point scores per held row, {resample index: scores}, scatter); `inner`: name ->
    inner back-test scores per inner held row. Returns (point, draws, the resample index of each draw, weights,
    inner rmse, mean noise sd) or raises FitError.
    """
    actual = inner_held[f"score:{task}"].to_numpy().astype(float)
    known = np.isfinite(actual)
    w = weights({m: np.asarray(s, float)[known] for m, s in inner.items() if m in members}, actual[known])
    if not w or not known.any():
        raise FitError("no member predicted this task on both the inner back-test and the targets")
    names = sorted(w)
    point = sum(w[m] * np.asarray(members[m][0], float) for m in names)
    inner_pred = sum(w[m] * np.asarray(inner[m], float)[known] for m in names)
    inner_rmse = float(np.sqrt(np.mean((inner_pred - actual[known]) ** 2)))
    # each resample: the weighted mean over the members refitted on it (weights renormalised over those that were)
    draws, drawn_at = [], []
    for j in range(n_boot):
        have = [m for m in names if j in members[m][1]]
        if have:
            total = sum(w[m] for m in have)
            draws.append(sum(w[m] * members[m][1][j] for m in have) / total)
            drawn_at.append(j)
    models_var = sum(w[m] * (np.asarray(members[m][0], float) - point) ** 2 for m in names)
    scatter = sum(w[m] * members[m][2] for m in names)
    # extrapolation: the inner back-test's distance (inner held rung over the rung below it) against the target's
    n_max, inner_top = train["n_params"].max(), inner_held["n_params"].max()
    n_below = train.filter(pl.col("n_params") < inner_top)["n_params"].max()
    inner_distance = float(_log_distance(inner_top, n_below))
    ratio = np.maximum(1.0, _log_distance(held["n_params"].to_numpy(), n_max) / max(inner_distance, 1e-9))
    sd = np.sqrt(models_var + scatter**2 + (inner_rmse * ratio) ** 2)
    draws = np.array(draws) if draws else np.full((0, held.height), math.nan)
    if len(draws):
        draws = draws + held_normal(seed_noise, len(draws), held) * sd
    return point, draws, drawn_at, w, inner_rmse, float(np.mean(sd[~planned_mask(held)]))  # the back-test's runs' alone
