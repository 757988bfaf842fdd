"""Benchmark prediction from a budget of selected points (the SELECT proposal's Algorithm 1: SELECT, then rank).

The runs are split into source runs, whose checkpoints (models) are the only ones the
selection sees, and held-out target runs, whose checkpoints are only evaluated. Per task
(one prompt and shots), at each budget B, three selectors pick B examples with weights:

- select: the seed's O(n) point relatedness - K-means with B clusters on per-run
  polynomial coefficients of the examples' NLL trajectories over the source checkpoints;
  each cluster's medoid (the member nearest its centre) weighted by the cluster's size.
- anchor_points (Vivek et al., 2024): K-medoids with B clusters on 1 - correlation of the
  examples' correct-class confidence across the source models; medoids weighted by size.
- random: B examples uniformly without replacement, equal weights; `random_draws` draws.

Each target model's full-benchmark accuracy is estimated as the weighted mean of its
correctness on the selected points (exact when every point is selected), and the target
models are ranked by their weighted mean log-likelihood of the correct answers on the
selected points (Algorithm 1's zero-shot score); Kendall's tau against the ranking by
true full-benchmark accuracy says how well that ranking holds.
"""

import warnings

import numpy as np
import polars as pl
from scipy import stats

from lmforecast.fits.relatedness.trajectories import correlation_matrix, k_means, k_medoids, polynomial_features, trajectories
from lmforecast.tables import first_prompt

METHODS = ("select", "anchor_points", "random")


def split_runs(runs, cfg):
    """(source runs, target runs): the configured list, or a seeded fraction; never a run on both sides."""
    runs = sorted(runs)
    if cfg.source_runs:
        unknown = sorted(set(cfg.source_runs) - set(runs))
        if unknown:
            raise ValueError(f"fit.selection.source_runs: {unknown} are not runs of the tables; expected some of {runs}")
        source = sorted(cfg.source_runs)
    else:
        n_source = min(max(round(cfg.source_fraction * len(runs)), 1), len(runs) - 1)
        order = np.random.default_rng(cfg.seed).permutation(len(runs))
        source = sorted(runs[i] for i in order[:n_source])
    target = [r for r in runs if r not in source]
    if not source or not target:
        raise ValueError(f"fit.selection: need at least one source and one target run; got source {source}, target {target}")
    assert not set(source) & set(target), "a run is on both sides of the source/target split"
    return source, target


def _by_cluster(labels, pick):
    """Per non-empty cluster: its chosen point (pick(members)) and its size."""
    idx, sizes = [], []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        idx.append(pick(c, members))
        sizes.append(members.size)
    return np.array(idx), np.array(sizes, dtype=np.float64)


def select_points(nll_source: np.ndarray, segments, degree: int, budget: int, seed: int):
    """SELECT: medoids of K-means clusters of the trajectories' polynomial coefficients, weighted by size."""
    feats = polynomial_features(nll_source, segments, degree)
    labels, centres = k_means(feats, budget, seed)

    def nearest_to_centre(c, members):
        return members[np.argmin(((feats[members] - centres[c]) ** 2).sum(axis=1))]

    return _by_cluster(labels, nearest_to_centre)


def anchor_points(dist: np.ndarray, budget: int, seed: int):
    """Anchor Points: K-medoids on a precomputed 1 - correlation matrix; medoids weighted by cluster size."""
    medoids, labels = k_medoids(dist, budget, seed)
    return _by_cluster(labels, lambda c, members: medoids[c])


def random_points(n: int, budget: int, rng):
    return rng.choice(n, size=budget, replace=False), np.ones(budget)


def weighted_mean(values: np.ndarray, idx, weights) -> np.ndarray:
    """Per model (column): the weighted mean of `values` over the selected rows."""
    w = np.asarray(weights, float)
    return w @ values[np.asarray(idx)] / w.sum()


def kendall_tau(a, b) -> float:
    """Kendall's tau-b; NaN when either side is constant (no ranking to compare)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy warns on constant input and answers NaN, which is what we report
        return float(stats.kendalltau(a, b).statistic)


def score_selection(correct: np.ndarray, logprob: np.ndarray, idx, weights):
    """(MAE of the full-benchmark accuracy estimate over target models, Kendall tau of the log-likelihood ranking)."""
    truth = correct.mean(axis=0)
    mae = float(np.abs(weighted_mean(correct, idx, weights) - truth).mean())
    return mae, kendall_tau(weighted_mean(logprob, idx, weights), truth)


def task_benchmark(scores: pl.DataFrame, metric: str, source, target):
    """One task's matrices: source NLL and confidence (selection), target correctness and log-likelihood (evaluation)."""
    correct_col = "correct" if metric == "acc" else "correct_norm"
    scores = scores.with_columns((-pl.col("logprob_correct")).alias("nll"), pl.col(correct_col).cast(pl.Float64).alias("hit"))
    ids, src_ckpts, nll = trajectories(scores, "nll", source)
    _, _, confidence = trajectories(scores, "prob_correct_norm", source)
    tgt_ids, tgt_ckpts, hit = trajectories(scores, "hit", target)
    _, _, logprob = trajectories(scores, "logprob_correct", target)
    assert tgt_ids == ids
    assert not {r for r, _ in src_ckpts} & {r for r, _ in tgt_ckpts}, "a model is on both sides of the split"
    return {
        "examples": ids,
        "segments": [r for r, _ in src_ckpts],
        "nll": nll,
        "confidence": confidence,
        "correct": hit,
        "logprob": logprob,
        "n_source_models": len(src_ckpts),
        "n_target_models": len(tgt_ckpts),
    }


def evaluate_selection(example_scores: pl.DataFrame, cfg):
    """All tasks x budgets x methods (`cfg`: SelectionSettings). Returns (rows as a DataFrame, summary dict)."""
    scores = first_prompt(example_scores.filter(pl.col("shots") == cfg.shots), cfg.prompt)
    if scores.height == 0:
        raise ValueError(f"example_scores: no rows with shots = {cfg.shots} (fit.selection.shots)")
    source, target = split_runs(scores["run"].unique().to_list(), cfg)
    rows, summary = [], {"source_runs": source, "target_runs": target, "tasks": {}}
    for task in sorted(scores["task"].unique()):
        t = scores.filter(pl.col("task") == task)
        bench = task_benchmark(t, cfg.metric, source, target)
        n = len(bench["examples"])
        correct, logprob = bench["correct"], bench["logprob"]
        anchor_dist = 1.0 - correlation_matrix(bench["confidence"])
        base = {
            "task": task,
            "prompt": t["prompt"][0],
            "shots": cfg.shots,
            "n_examples": n,
            "n_source_models": bench["n_source_models"],
            "n_target_models": bench["n_target_models"],
        }
        budgets = [b for b in cfg.budgets if b < n]
        info = {
            "n_examples": n,
            "skipped_budgets": [b for b in cfg.budgets if b >= n],
            "kendall_tau_all_points": kendall_tau(logprob.mean(axis=0), correct.mean(axis=0)),
        }
        for b in budgets:
            selections = {
                "select": lambda: select_points(bench["nll"], bench["segments"], cfg.degree, b, cfg.seed),
                "anchor_points": lambda: anchor_points(anchor_dist, b, cfg.seed),
            }
            for method, select in selections.items():  # one deterministic selection each
                idx, w = select()
                mae, tau = score_selection(correct, logprob, idx, w)
                rows.append(
                    {
                        **base,
                        "budget": b,
                        "method": method,
                        "n_selected": len(idx),
                        "draws": 1,
                        "mae": mae,
                        "mae_std": np.nan,
                        "kendall_tau": tau,
                        "kendall_tau_std": np.nan,
                    }
                )
            rng = np.random.default_rng([cfg.seed, b])
            draws = np.array([score_selection(correct, logprob, *random_points(n, b, rng)) for _ in range(cfg.random_draws)])
            rows.append(
                {
                    **base,
                    "budget": b,
                    "method": "random",
                    "n_selected": b,
                    "draws": cfg.random_draws,
                    "mae": float(draws[:, 0].mean()),
                    "mae_std": float(draws[:, 0].std(ddof=1)),
                    "kendall_tau": float(np.nanmean(draws[:, 1])) if np.isfinite(draws[:, 1]).any() else np.nan,
                    "kendall_tau_std": float(np.nanstd(draws[:, 1], ddof=1)) if np.isfinite(draws[:, 1]).sum() > 1 else np.nan,
                }
            )
        summary["tasks"][task] = {**info, **_verdict(rows, task, cfg.small_budget_max)}
    return pl.DataFrame(rows, schema=ROW_SCHEMA), summary


ROW_SCHEMA = {
    "task": pl.String,
    "prompt": pl.String,
    "shots": pl.Int64,
    "n_examples": pl.Int64,
    "n_source_models": pl.Int64,
    "n_target_models": pl.Int64,
    "budget": pl.Int64,
    "method": pl.String,
    "n_selected": pl.Int64,
    "draws": pl.Int64,
    "mae": pl.Float64,
    "mae_std": pl.Float64,
    "kendall_tau": pl.Float64,
    "kendall_tau_std": pl.Float64,
}


def _verdict(rows, task, small_max):
    """Whether SELECT's MAE is below random's mean MAE at every small budget (B <= small_max) of the task."""
    by = {(r["budget"], r["method"]): r for r in rows if r["task"] == task}
    small = sorted(b for b, m in by if m == "select" and b <= small_max)
    per_budget = {}
    for b in sorted({b for b, _ in by}):
        s, a, r = by[b, "select"], by[b, "anchor_points"], by[b, "random"]
        per_budget[str(b)] = {
            "select_mae": s["mae"],
            "anchor_points_mae": a["mae"],
            "random_mae": r["mae"],
            "random_mae_std": r["mae_std"],
            "select_kendall_tau": s["kendall_tau"],
            "anchor_points_kendall_tau": a["kendall_tau"],
            "random_kendall_tau": r["kendall_tau"],
            "select_beats_random": s["mae"] < r["mae"],
        }
    return {
        "small_budgets": small,
        "select_beats_random_at_small_budgets": bool(small) and all(per_budget[str(b)]["select_beats_random"] for b in small),
        "by_budget": per_budget,
    }
