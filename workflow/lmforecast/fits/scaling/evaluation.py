"""How well the predictors forecast the held-out runs: mean errors with their intervals, coverage, the floor the
targets' own sampling noise sets, paired comparisons, the per-run and per-task tables of scaling_report.txt; the
table of the forecasts of the runs not trained and the rankings of recipes at a shared scale, with how well the
back-test's own rankings came out (ranking_backtest).

The intervals on a mean error are a two-way bootstrap (Owen's pigeonhole bootstrap, 2007): held-out runs and tasks
drawn with replacement, independently, each (run, task) pair weighted by the product of their counts. A target
model's errors over its tasks are correlated (one model, one extrapolation), as are a task's over the targets, so
neither the pairs nor one of the two ways alone may be drawn as if independent. Every predictor sees the same draws
(seeded), so that their intervals are comparable and their differences paired. By hand (a few lines of numpy): scipy's
`bootstrap` resamples one way (paired samples), not rows and columns of a table at once.
"""

import math

import numpy as np
import polars as pl

RESAMPLES = 2000


def summary(preds: pl.DataFrame) -> pl.DataFrame:
    """Each predictor's mean errors and its intervals' coverage (the relative error and the coverage with their 95%
    intervals), beside the error that the targets' sampling noise alone gives; the most accurate (mean absolute
    error) first."""
    # a forecaster exact in expectation errs by |N(0, se)|, whose mean is sqrt(2 / pi) se
    floor = (
        (math.sqrt(2 / math.pi) * pl.col("score_actual_se") / pl.col("score_actual"))
        .fill_nan(None)
        .mean()
        .alias("floor_rel_error")
    )
    means = preds.group_by("predictor").agg(
        pl.col("abs_error").mean(), pl.col("rel_error").mean(), floor, pl.col("covered").cast(float).mean(), pl.len()
    )
    bounds = mean_interval(preds, "rel_error").join(mean_interval(preds, "covered"), on="predictor", how="full", coalesce=True)
    return (
        means.join(bounds, on="predictor", how="left")
        .sort("abs_error")
        .select(
            "predictor",
            "abs_error",
            "rel_error",
            "rel_error_lo",
            "rel_error_hi",
            "floor_rel_error",
            "covered",
            "covered_lo",
            "covered_hi",
            "len",
        )
    )


def _matrices(preds: pl.DataFrame, column: str = "rel_error"):
    """(runs, tasks, {predictor: (values, present)}): each predictor's `column` (a relative error, or whether an
    interval covered: 1 or 0) as a runs x tasks matrix, and which of its cells it has."""
    value = pl.col(column).cast(pl.Float64)
    rows = preds.filter(value.is_not_null() & value.is_not_nan()).with_columns(value)
    runs, tasks = sorted(set(rows["run"])), sorted(set(rows["task"]))
    matrices = {}
    for (predictor,), group in rows.group_by("predictor"):
        values, present = np.zeros((len(runs), len(tasks))), np.zeros((len(runs), len(tasks)))
        for run, task, v in group.select("run", "task", column).iter_rows():
            i, j = runs.index(run), tasks.index(task)
            values[i, j], present[i, j] = v, 1.0
        matrices[predictor] = (values, present)
    return runs, tasks, matrices


def _draws(n_runs: int, n_tasks: int, resamples: int, seed: int):
    """Each draw's count of every run and of every task: arrays (resamples, runs) and (resamples, tasks)."""
    rng = np.random.default_rng(seed)
    runs = rng.multinomial(n_runs, np.full(n_runs, 1 / n_runs), size=resamples)
    tasks = rng.multinomial(n_tasks, np.full(n_tasks, 1 / n_tasks), size=resamples)
    return runs, tasks


def _resampled_means(values, present, draws) -> np.ndarray:
    """The mean of `values` over the `present` cells in each draw; a draw of none of them has no mean (dropped)."""
    run_counts, task_counts = draws
    total = np.einsum("br,rt,bt->b", run_counts, values * present, task_counts)
    weight = np.einsum("br,rt,bt->b", run_counts, present, task_counts)
    return total[weight > 0] / weight[weight > 0]


def _percentiles(means) -> tuple[float, float]:
    return tuple(float(v) for v in np.percentile(means, [2.5, 97.5])) if len(means) else (math.nan, math.nan)


def mean_interval(preds: pl.DataFrame, column: str = "rel_error", resamples: int = RESAMPLES, seed: int = 0):
    """Each predictor's mean `column`'s 95% percentile interval (`<column>_lo`, `<column>_hi`): how far its mean
    relative error (`rel_error`) or its intervals' coverage (`covered`) could move on other targets and other tasks
    (the module's two-way bootstrap)."""
    runs, tasks, matrices = _matrices(preds, column)
    draws = _draws(len(runs), len(tasks), resamples, seed) if matrices else None
    schema = {"predictor": pl.String, f"{column}_lo": pl.Float64, f"{column}_hi": pl.Float64}
    rows = [dict(zip(schema, (p, *_percentiles(_resampled_means(v, m, draws))))) for p, (v, m) in matrices.items()]
    return pl.DataFrame(rows, schema=schema).sort("predictor")


COMPARISON_SCHEMA = {
    "predictor": pl.String,
    "versus": pl.String,
    "pairs": pl.Int64,
    "rel_error_diff": pl.Float64,
    "diff_lo": pl.Float64,
    "diff_hi": pl.Float64,
}


def compare(preds: pl.DataFrame, comparisons, resamples: int = RESAMPLES, seed: int = 0) -> pl.DataFrame:
    """For each (predictor, versus) in `comparisons`, the predictor's mean relative error minus the other's over the
    (run, task) pairs both predicted, with its 95% interval from the same draws for both (paired, the module's two-way
    bootstrap): an interval that holds 0 does not tell the two apart on other targets and tasks."""
    return _compare(*_matrices(preds), comparisons, resamples, seed)


def _compare(runs, tasks, matrices, comparisons, resamples: int, seed: int) -> pl.DataFrame:
    """compare() on the matrices of _matrices()."""
    draws = _draws(len(runs), len(tasks), resamples, seed) if matrices else None
    rows = []
    for predictor, versus in comparisons:
        (error, present), (other, other_present) = matrices[predictor], matrices[versus]
        both, diff = present * other_present, error - other
        point = float((diff * both).sum() / both.sum()) if both.sum() else math.nan
        lo, hi = _percentiles(_resampled_means(diff, both, draws))
        rows.append(dict(zip(COMPARISON_SCHEMA, (predictor, versus, int(both.sum()), point, lo, hi))))
    return pl.DataFrame(rows, schema=COMPARISON_SCHEMA)


def versus_best(preds: pl.DataFrame, resamples: int = RESAMPLES, seed: int = 0) -> pl.DataFrame:
    """Each other predictor against the most accurate one (compare): the lowest mean relative error among the
    predictors of the most pairs (a chain that skips the hard tasks is not the best for its mean over the easy ones)."""
    runs, tasks, matrices = _matrices(preds)
    if len(matrices) < 2:
        return pl.DataFrame(schema=COMPARISON_SCHEMA)
    best = min(matrices, key=lambda p: (-matrices[p][1].sum(), matrices[p][0].sum() / matrices[p][1].sum()))
    others = [(p, best) for p in sorted(matrices) if p != best]
    return _compare(runs, tasks, matrices, others, resamples, seed).sort("rel_error_diff")


def breakdown(preds: pl.DataFrame, by: str) -> pl.DataFrame:
    """Each predictor's (columns) mean relative error and intervals covering, per held-out run or task (`by`: run,
    task), as "5.8% (7/8)": the issue's per-target figures (7B, 13B) read at a glance."""
    cell = pl.format(
        "{}% ({}/{})",
        (100 * pl.col("rel_error").mean()).round(1),
        pl.col("covered").cast(pl.Int64).sum(),
        pl.col("covered").is_not_null().sum(),
    )
    stats = preds.filter(pl.col("rel_error").is_not_null()).group_by(by, "predictor").agg(cell.alias("cell"))
    # the summary's order, most accurate (mean absolute error) first
    order = preds.group_by("predictor").agg(pl.col("abs_error").mean()).sort("abs_error")["predictor"].to_list()
    table = stats.pivot(on="predictor", index=by, values="cell").sort(by)
    return table.select(by, *[p for p in order if p in table.columns])


def forecast_table(forecasts: pl.DataFrame) -> pl.DataFrame:
    """The planned runs' forecasts (backtest.forecast) as one row per run and task, one column per predictor:
    "score [lo, hi]", the 95% interval's bounds."""
    cell = pl.format("{} [{}, {}]", *(pl.col(c).round(3).cast(pl.String) for c in ("score_pred", "score_lo", "score_hi"))).alias(
        "forecast"
    )
    return (
        forecasts.with_columns(cell)
        .pivot(on="predictor", index=["run", "task"], values="forecast", maintain_order=True)
        .sort("run", "task")
    )


def forecast_ranking(forecasts: pl.DataFrame) -> pl.DataFrame:
    """Where runs of two or more families share a scale (n_params, tokens): per predictor and task, each run's
    forecast and `p_first`, the share of bootstrap resamples in which its draw is the highest of them (`resamples`:
    those where every one of them has a draw). The draws are paired by resample index j (a family's refit j and the
    shared shape's refit j go together), so the share carries the forecasts' joint uncertainty: which recipe the
    forecasts put first at that scale, and how often their own resampling agrees."""
    rows = []
    for (predictor, task, n_params, tokens), group in forecasts.group_by(
        "predictor", "task", "n_params", "tokens", maintain_order=True
    ):
        if group["family"].n_unique() < 2:
            continue
        draws = np.array(group["score_draws"].to_list(), float)  # runs x resamples
        both = np.isfinite(draws).all(axis=0)
        first = np.argmax(draws[:, both], axis=0)
        for i, (run, family, score) in enumerate(group.select("run", "family", "score_pred").iter_rows()):
            share = float(np.mean(first == i)) if both.any() else math.nan
            rows.append((predictor, task, n_params, tokens, run, family, score, share, int(both.sum())))
    schema = {"predictor": pl.String, "task": pl.String, "n_params": pl.Float64, "tokens": pl.Float64, "run": pl.String}
    schema |= {"family": pl.String, "score_pred": pl.Float64, "p_first": pl.Float64, "resamples": pl.Int64}
    return pl.DataFrame(rows, schema=schema, orient="row").sort(
        "n_params", "tokens", "task", "predictor", "score_pred", descending=[False, False, False, False, True]
    )


RANKING_SCHEMA = {
    "predictor": pl.String,
    "cells": pl.Int64,  # (scale, task) cells where held-out runs of several families share a scale
    "runs_per_cell": pl.Float64,
    "point_right": pl.Float64,  # share of cells whose point forecasts put the actual winner first
    "chance": pl.Float64,  # the same for a guess: the mean of 1 / runs
    "p_winner": pl.Float64,  # the mean p_first of the actual winner
    "brier": pl.Float64,  # the mean over cells of sum over runs of (p_first - 1[winner])^2
    "brier_chance": pl.Float64,  # the same for p_first = 1 / runs: 1 - 1 / runs
    # brier_chance - brier (> 0: p_first beat a guess) with its 95% interval, the two-way bootstrap over the scales
    # and the tasks (the module's, a scale in a run's place)
    "brier_gain": pl.Float64,
    "brier_gain_lo": pl.Float64,
    "brier_gain_hi": pl.Float64,
    "with_draws": pl.Int64,  # cells with p_first (a bootstrap drew them); brier and p_winner are over these
}
RELIABILITY_BINS = (0.2, 0.4, 0.6, 0.8)  # p_first's bins: 0-0.2, 0.2-0.4, ..., 0.8-1 (each closed below)


def _binned(p: pl.Expr, edges) -> pl.Expr:
    """A probability's bin among 0-edges[0], edges[0]-edges[1], ..., edges[-1]-1 (each closed below), as its label."""
    bounds = (0, *edges, 1)
    labels = [f"{lo:g}-{hi:g}" for lo, hi in zip(bounds, bounds[1:])]
    index = pl.sum_horizontal([(p >= edge).cast(pl.Int64) for edge in edges])
    return index.replace_strict(list(range(len(labels))), labels)


def ranking_cells(preds: pl.DataFrame) -> pl.DataFrame:
    """The back-test's own rankings: where held-out runs of several families share a scale, forecast_ranking's
    p_first of each, beside the actual scores (`won`: the highest actual of its cell, the first on a tie)."""
    ranking = forecast_ranking(preds)
    cell = ["predictor", "task", "n_params", "tokens"]
    actual = preds.select("predictor", "task", "run", "score_actual")
    ranked = ranking.join(actual, on=["predictor", "task", "run"], how="left")
    return ranked.with_columns(
        (pl.col("run") == pl.col("run").sort_by("score_actual", descending=True).first().over(cell)).alias("won"),
        (pl.col("run") == pl.col("run").sort_by("score_pred", descending=True).first().over(cell)).alias("put_first"),
    )


def ranking_backtest(preds: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """How well each predictor ranked recipes in the back-test, where held-out runs of several families share a
    scale: per predictor, how often the point forecasts put the actual winner first against a guess, and how honest
    p_first was, read as a probability (the Brier score against a uniform guess; lower is better). And the
    reliability table: the runs binned by p_first, each bin's mean p_first beside the share that won (equal where
    p_first is calibrated). Returns (summary, reliability); empty where no held-out scale is shared."""
    cells = ranking_cells(preds)
    cell = ["predictor", "task", "n_params", "tokens"]
    if not cells.height:
        return pl.DataFrame(schema=RANKING_SCHEMA), pl.DataFrame()
    hit = pl.col("won").cast(float)
    # in the cells' order throughout (maintain_order): the same sums in the same order, the same tables every run
    per_cell = cells.group_by(cell, maintain_order=True).agg(
        pl.len().alias("runs"),
        (pl.col("won") & pl.col("put_first")).any().alias("point_right"),
        pl.col("p_first").filter(pl.col("won")).first().alias("p_winner"),
        ((pl.col("p_first") - hit) ** 2).sum().alias("brier"),
        pl.col("p_first").is_not_nan().all().alias("drawn"),
    )
    per_cell = per_cell.with_columns(
        (1 - 1 / pl.col("runs") - pl.col("brier")).alias("brier_gain"),
        pl.format("{}/{}", "n_params", "tokens").alias("run"),  # a scale, drawn as a run is in mean_interval
    )
    drawn = pl.col("drawn")
    summary = (
        per_cell.group_by("predictor", maintain_order=True)
        .agg(
            pl.len().cast(pl.Int64).alias("cells"),
            pl.col("runs").mean().alias("runs_per_cell"),
            pl.col("point_right").cast(float).mean(),
            (1 / pl.col("runs")).mean().alias("chance"),
            pl.col("p_winner").filter(drawn).mean(),
            pl.col("brier").filter(drawn).mean(),
            (1 - 1 / pl.col("runs")).mean().alias("brier_chance"),
            pl.col("brier_gain").filter(drawn).mean(),
            drawn.sum().cast(pl.Int64).alias("with_draws"),
        )
        .join(mean_interval(per_cell.filter(drawn), "brier_gain"), on="predictor", how="left")
        .select(list(RANKING_SCHEMA))
        .sort("predictor")
    )
    binned = cells.filter(pl.col("p_first").is_not_nan()).with_columns(
        _binned(pl.col("p_first"), RELIABILITY_BINS).alias("p_first_bin")
    )
    reliability = (
        binned.group_by("predictor", "p_first_bin", maintain_order=True)
        .agg(pl.len().alias("runs"), pl.col("p_first").mean().alias("mean_p_first"), hit.mean().alias("share_won"))
        .sort("predictor", "p_first_bin")
    )
    return summary, reliability
