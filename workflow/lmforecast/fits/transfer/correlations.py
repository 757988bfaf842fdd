"""Zero-shot vs fine-tuned accuracy (the SELECT proposal's objective 1).

Per task and prompt, and per SFT method and data mix: Pearson and Spearman correlation
(with p-values, scipy) between a checkpoint's zero-shot accuracy and its accuracy after
SFT, in two scopes:
- across_runs: the last fine-tuned checkpoint of every run;
- across_checkpoints: the fine-tuned checkpoints of one run (needs sft.checkpoints: all,
  and at least 3 of them).
"""

import warnings

import numpy as np
import polars as pl
from scipy import stats

MIN_POINTS = 3

SCHEMA = {
    "task": pl.String,
    "prompt": pl.String,
    "shots": pl.Int64,
    "sft_method": pl.String,
    "sft_data": pl.String,
    "scope": pl.String,
    "run": pl.String,
    "n": pl.Int64,
    "pearson_r": pl.Float64,
    "pearson_p": pl.Float64,
    "spearman_rho": pl.Float64,
    "spearman_p": pl.Float64,
}


def correlations(x, y) -> dict:
    """Pearson and Spearman with p-values; NaN with fewer than 3 points or a constant side."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    nan = {"pearson_r": np.nan, "pearson_p": np.nan, "spearman_rho": np.nan, "spearman_p": np.nan}
    if len(x) < MIN_POINTS or np.ptp(x) == 0 or np.ptp(y) == 0:
        return nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # exact-p-value notes for tiny samples
        p, s = stats.pearsonr(x, y), stats.spearmanr(x, y)
    return {
        "pearson_r": float(p.statistic),
        "pearson_p": float(p.pvalue),
        "spearman_rho": float(s.statistic),
        "spearman_p": float(s.pvalue),
    }


def paired_scores(task_scores: pl.DataFrame, sft_scores: pl.DataFrame, cfg) -> pl.DataFrame:
    """One row per fine-tuned checkpoint x task x prompt x SFT method x data: zero-shot and post-SFT accuracy."""
    zero = task_scores.filter((pl.col("metric") == cfg.metric) & (pl.col("shots") == cfg.shots)).select(
        "run", "step", "task", "prompt", "shots", pl.col("value").alias("zero_shot")
    )
    tuned = sft_scores.filter(pl.col("metric") == cfg.metric).select(
        "run", "step", "task", "sft_method", "sft_data", pl.col("value").alias("fine_tuned")
    )
    return zero.join(tuned, on=["run", "step", "task"]).sort("task", "prompt", "sft_method", "sft_data", "run", "step")


def transfer_correlations(task_scores: pl.DataFrame, sft_scores: pl.DataFrame, cfg):
    """Returns (correlations table, paired scores used for it)."""
    pairs = paired_scores(task_scores, sft_scores, cfg)
    if pairs.height == 0:
        raise ValueError(
            f"no checkpoint has both a zero-shot {cfg.metric} ({cfg.shots}-shot, task_scores) "
            f"and a post-SFT {cfg.metric} (sft_scores)"
        )
    keys = ["task", "prompt", "shots", "sft_method", "sft_data"]
    rows = []
    last = pairs.join(pairs.group_by("run").agg(pl.col("step").max()), on=["run", "step"])
    for key, group in last.group_by(keys, maintain_order=True):
        rows.append(
            {
                **dict(zip(keys, key)),
                "scope": "across_runs",
                "run": None,
                "n": group.height,
                **correlations(group["zero_shot"], group["fine_tuned"]),
            }
        )
    for key, group in pairs.group_by([*keys, "run"], maintain_order=True):
        if group.height >= MIN_POINTS:
            rows.append(
                {
                    **dict(zip(keys, key[:-1])),
                    "scope": "across_checkpoints",
                    "run": key[-1],
                    "n": group.height,
                    **correlations(group["zero_shot"], group["fine_tuned"]),
                }
            )
    return pl.DataFrame(rows, schema=SCHEMA), pairs
