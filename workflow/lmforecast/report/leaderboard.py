"""The leaderboard: every predictor x target with its back-test error and interval, best per target marked.

Targets are what a predictor is asked to predict, so rows compare only within one target:
- scaling: a held-out run's final score on a task, from compute (absolute error; lower is better);
- pairwise: which of two models is better after SFT on a task group (pairwise accuracy; higher is better);
- selection: held-out models' full-benchmark accuracy on a task from B selected points (MAE; lower is better).
"""

import polars as pl

SCHEMA = {"question": pl.String, "target": pl.String, "predictor": pl.String, "measure": pl.String, "value": pl.Float64,
          "lo": pl.Float64, "hi": pl.Float64, "interval": pl.String, "n": pl.Int64, "better": pl.String}


def _error_range(actual: float, lo: float, hi: float) -> tuple[float, float]:
    """Range of |actual - p| over predictions p in [lo, hi]: the back-test error the prediction interval allows."""
    far = max(abs(actual - lo), abs(actual - hi))
    return (0.0, far) if lo <= actual <= hi else (min(abs(actual - lo), abs(actual - hi)), far)


def scaling_rows(preds: pl.DataFrame) -> list[dict]:
    rows = []
    for r in preds.iter_rows(named=True):
        lo, hi = _error_range(r["score_actual"], r["score_lo"], r["score_hi"])
        rows.append({"question": "scaling", "target": f"{r['task']}: final score of {r['run']} (held out)",
                     "predictor": r["predictor"], "measure": "abs. error", "value": r["abs_error"], "lo": lo, "hi": hi,
                     "interval": f"error allowed by the 95% bootstrap prediction interval ({r['n_boot']} refits)"
                                 + ("" if r["covered"] else "; interval misses the actual score"),
                     "n": r["n_fit_runs"], "better": "lower"})
    return rows


def pairwise_rows(results: pl.DataFrame) -> list[dict]:
    rows = []
    for r in results.iter_rows(named=True):
        learned = r["proxy"] == "learned"
        rows.append({"question": "pairwise", "target": f"post-SFT order, task group '{r['task_group']}'",
                     "predictor": "learned comparator" if learned else f"proxy {r['proxy']}",
                     "measure": "pairwise accuracy", "value": r["accuracy"], "lo": r["ci_low"], "hi": r["ci_high"],
                     "interval": ("95% interval over splits of the models (out-of-split pairs)" if learned
                                  else "95% bootstrap interval over the models"),
                     "n": r["n_pairs"], "better": "higher"})
    return rows


def selection_rows(rows_in: pl.DataFrame) -> list[dict]:
    rows = []
    for r in rows_in.iter_rows(named=True):
        random = r["method"] == "random"
        spread = 1.96 * r["mae_std"] if random and r["mae_std"] == r["mae_std"] else None
        rows.append({"question": "selection",
                     "target": f"{r['task']}: accuracy of {r['n_target_models']} held-out models from B={r['budget']} points",
                     "predictor": r["method"], "measure": "MAE", "value": r["mae"],
                     "lo": max(r["mae"] - spread, 0.0) if spread is not None else None,
                     "hi": r["mae"] + spread if spread is not None else None,
                     "interval": (f"mean +- 1.96 sd over {r['draws']} random draws" if random
                                  else "one deterministic selection: no interval"),
                     "n": r["n_target_models"], "better": "lower"})
    return rows


def leaderboard(preds: pl.DataFrame | None, pairwise: pl.DataFrame | None, selection: pl.DataFrame | None) -> pl.DataFrame:
    """One row per predictor x target; `best` marks the best value per target (ties all marked)."""
    rows = []
    if preds is not None:
        rows += scaling_rows(preds)
    if pairwise is not None:
        rows += pairwise_rows(pairwise)
    if selection is not None:
        rows += selection_rows(selection)
    board = pl.DataFrame(rows, schema=SCHEMA)
    signed = pl.when(pl.col("better") == "lower").then(pl.col("value")).otherwise(-pl.col("value"))
    finite = pl.col("value").is_finite()
    best = signed.filter(finite).min().over("question", "target")
    return (board.with_columns(best=(finite & ((signed - best).abs() < 1e-12)).fill_null(False))
            .sort("question", "target", signed))
