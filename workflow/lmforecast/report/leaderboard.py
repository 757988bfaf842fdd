"""The leaderboard: every predictor x target with its back-test error and interval, best per target marked.

Targets are what a predictor is asked to predict, so rows compare only within one target. Each fit
gives its own rows (its registry entry's `leaderboard`): scaling, a held-out run's final score on a
task from compute (absolute error, lower is better); pairwise, which of two models is better after
SFT (pairwise accuracy, higher is better); selection, held-out models' full-benchmark accuracy from
B selected points (MAE, lower is better).
"""

import polars as pl

SCHEMA = {
    "question": pl.String,
    "target": pl.String,
    "predictor": pl.String,
    "measure": pl.String,
    "value": pl.Float64,
    "lo": pl.Float64,
    "hi": pl.Float64,
    "interval": pl.String,
    "n": pl.Int64,
    "better": pl.String,
}


def leaderboard(rows: list[dict]) -> pl.DataFrame:
    """One row per predictor x target (the rows each fit's `leaderboard` gives); `best` marks the best
    value per target (ties all marked)."""
    board = pl.DataFrame(rows, schema=SCHEMA)
    signed = pl.when(pl.col("better") == "lower").then(pl.col("value")).otherwise(-pl.col("value"))
    finite = pl.col("value").is_finite()
    best = signed.filter(finite).min().over("question", "target")
    return board.with_columns(best=(finite & ((signed - best).abs() < 1e-12)).fill_null(False)).sort("question", "target", signed)
