"""Pairwise checkpoint selection (Zeng et al. 2025): which of two models is better after SFT?

A model is a run's last checkpoint (or every fine-tuned checkpoint). Over the unordered pairs of models
at a comparable budget, the label says which one scores higher after SFT, averaged over a
task group; pairs closer than `tie_epsilon` are ties, counted and left out. A proxy is a
number measured before SFT, oriented so that higher = better; its pairwise accuracy is the
share of pairs it orders like the label (a tie in the proxy counts one half).

Unsupervised proxies are read off the tables, so new columns join in by themselves:
  inv_ppl                    exp(-mean over domains of the held-out loss), i.e. 1/PPL
  -<col>, -<col>[<domain>]   every other loss-like column of domain_losses (mean over domains,
                             and per domain; e.g. bits_per_byte, span_corruption_loss)
  -loss[<domain>]            each domain's held-out loss
  <metric>@<k>shot           each task_scores metric at k shots, averaged over the group's tasks
                             and prompts (negated where lower is better: -bits_per_byte@<k>shot);
                             DataDecide's (correct_prob, margin, norm_correct_prob, per token /
                             per char) have family `datadecide`, the others `kshot`
The learned comparator ("learning to compare") is a LightGBM classifier on the features
[p_i - p_j, p_i * p_j, p_i, p_j] of the chosen proxies, evaluated on random 60/40 splits of
the runs: trained on pairs within the train side, scored on pairs within the test side.
"""

import math

import numpy as np
import polars as pl

from lmforecast.config import ConfigError
from lmforecast.io import json_safe

DOMAIN_KEYS = ("run", "step", "domain", "tokens", "bytes")  # domain_losses columns that are not losses
# task_scores metrics where less is better (the perplexities come with imported lm-eval results)
LOWER_IS_BETTER = {"bits_per_byte", "ppl", "perplexity", "word_perplexity", "byte_perplexity"}
DATADECIDE = {"correct_prob", "correct_prob_per_token", "correct_prob_per_char", "margin", "norm_correct_prob"}
LEARNED = "learned"
MIN_TRAIN_PAIRS = 4


def _field(name):
    return f"fit.pairwise.{name}"


def task_groups(spec) -> dict:
    """fit.pairwise.task_groups (a list, so that a user's config replaces the default's) as name -> tasks."""
    return {g.name: list(g.tasks) for g in spec.task_groups}


# ---- the dataset: models, labels, proxies --------------------------------------------------------


def models_table(runs: pl.DataFrame, checkpoints: pl.DataFrame, which: str) -> pl.DataFrame:
    """One row per model (run x step) with the run's and the checkpoint's columns."""
    ck = checkpoints
    if which == "last":
        ck = ck.join(ck.group_by("run").agg(pl.col("step").max()), on=["run", "step"])
    return ck.drop("lr", strict=False).join(runs, on="run").sort("run", "step")


def labels(sft_scores: pl.DataFrame, spec) -> pl.DataFrame:
    """Post-SFT score per model and task group: the selected metric averaged over the group's tasks."""
    sft = sft_scores.filter(
        (pl.col("sft_method") == spec.sft_method) & (pl.col("sft_data") == spec.sft_data) & (pl.col("metric") == spec.sft_metric)
    )
    if sft.height == 0:
        raise ConfigError(
            f"{_field('sft_method')}/{_field('sft_data')}/{_field('sft_metric')}: no sft_scores rows for "
            f"{spec.sft_method!r}/{spec.sft_data!r}/{spec.sft_metric!r}; the table has "
            f"{sorted(set(zip(sft_scores['sft_method'], sft_scores['sft_data'])))}"
        )
    parts = []
    for group, tasks in sorted(task_groups(spec).items()):
        missing = sorted(set(tasks) - set(sft["task"]))
        if missing:
            raise ConfigError(f"{_field('task_groups')} ({group!r}): tasks {missing} have no sft_scores")
        g = (
            sft.filter(pl.col("task").is_in(tasks))
            .group_by("run", "step")
            .agg(pl.col("value").mean().alias("score"), pl.col("task").n_unique().alias("n_tasks"))
        )
        parts.append(g.filter(pl.col("n_tasks") == len(tasks)).drop("n_tasks").with_columns(pl.lit(group).alias("task_group")))
    return pl.concat(parts).sort("task_group", "run", "step")


def domain_proxies(domain_losses: pl.DataFrame) -> pl.DataFrame:
    """Proxies from held-out text (run, step, proxy, family, value), one set for every task group."""
    loss_columns = [c for c, t in domain_losses.schema.items() if c not in DOMAIN_KEYS and t.is_float()]
    parts = []
    for col in loss_columns:
        mean = domain_losses.group_by("run", "step").agg(pl.col(col).mean().alias("value"))
        if col == "loss":
            parts.append(
                mean.with_columns(
                    (-pl.col("value")).exp(), pl.lit("inv_ppl").alias("proxy"), pl.lit("perplexity").alias("family")
                )
            )
        else:
            parts.append(mean.with_columns(-pl.col("value"), pl.lit(f"-{col}").alias("proxy"), pl.lit(col).alias("family")))
        family = "domain_loss" if col == "loss" else col
        parts.append(
            domain_losses.select(
                "run",
                "step",
                (-pl.col(col)).alias("value"),
                pl.format("-{}[{}]", pl.lit(col), pl.col("domain")).alias("proxy"),
                pl.lit(family).alias("family"),
            )
        )
    return pl.concat([p.select("run", "step", "proxy", "family", "value") for p in parts])


def task_proxies(task_scores: pl.DataFrame, groups: dict) -> pl.DataFrame:
    """k-shot proxies per task group: each metric x shots, averaged over the group's tasks and prompts."""
    parts = []
    for group, tasks in sorted(groups.items()):
        t = task_scores.filter(pl.col("task").is_in(tasks)).group_by("run", "step", "metric", "shots").agg(pl.col("value").mean())
        lower = pl.col("metric").is_in(sorted(LOWER_IS_BETTER))
        parts.append(
            t.select(
                "run",
                "step",
                pl.lit(group).alias("task_group"),
                pl.when(lower)
                .then(pl.format("-{}@{}shot", "metric", "shots"))
                .otherwise(pl.format("{}@{}shot", "metric", "shots"))
                .alias("proxy"),
                pl.when(pl.col("metric").is_in(sorted(DATADECIDE)))
                .then(pl.lit("datadecide"))
                .otherwise(pl.lit("kshot"))
                .alias("family"),
                pl.when(lower).then(-pl.col("value")).otherwise(pl.col("value")).alias("value"),
            )
        )
    return pl.concat(parts)


class GroupData:
    """The models of one task group: keys, post-SFT scores, proxy matrix and which pairs are comparable."""

    def __init__(self, group, models, score, proxies, families, P, budget, eps, dropped=()):
        self.group, self.models, self.score, self.dropped = group, models, score, list(dropped)
        self.proxies, self.families, self.P = proxies, families, P
        n = len(score)
        self.run = np.array(models["run"].to_list())
        self.comparable = (budget[:, None] == budget[None, :]) & ~np.eye(n, dtype=bool)
        self.budget = budget
        diff = score[:, None] - score[None, :]
        self.diff = diff
        self.tie = self.comparable & ((np.abs(diff) < eps) | (diff == 0))
        self.valid = self.comparable & ~self.tie

    @property
    def n_pairs(self):
        return int(np.triu(self.valid).sum())

    @property
    def n_ties(self):
        return int(np.triu(self.tie).sum())


def build_dataset(tables: dict, spec) -> list[GroupData]:
    """Per task group: the models that have both a label and every proxy; checks the spec against the data first."""
    models = models_table(tables["runs"], tables["checkpoints"], spec.models)
    within = spec.compare_within
    if within != "all":
        unknown = sorted(set(within) - set(models.columns))
        if unknown:
            raise ConfigError(
                f"{_field('compare_within')}: columns {unknown} are in neither runs nor checkpoints; "
                f"expected some of {sorted(models.columns)}"
            )
    lab = labels(tables["sft_scores"], spec)
    for group in sorted(task_groups(spec)):
        unlabelled = models.join(lab.filter(pl.col("task_group") == group), on=["run", "step"], how="anti")
        if unlabelled.height and spec.models == "last":  # with `all`, the fine-tuned checkpoints are the models
            raise ConfigError(
                f"{_field('models')} = {spec.models!r}: no post-SFT scores of every task of group "
                f"{group!r} for {unlabelled.select('run', 'step').rows()[:5]} (is every run fine-tuned?)"
            )
    labelled = lab.select("run", "step").unique().join(models.select("run", "step"), on=["run", "step"])
    for name in ("domain_losses", "task_scores"):
        unevaluated = labelled.join(tables[name].select("run", "step").unique(), on=["run", "step"], how="anti")
        if unevaluated.height:
            raise ValueError(
                f"table {name}: no rows for the fine-tuned models {sorted(unevaluated.rows())[:5]} "
                f"({unevaluated.height} in all); every model needs its pre-SFT evaluation"
            )
    dom = domain_proxies(tables["domain_losses"])
    tsk = task_proxies(tables["task_scores"], task_groups(spec))
    out = []
    for group in sorted(task_groups(spec)):
        g_lab = lab.filter(pl.col("task_group") == group).join(models, on=["run", "step"]).sort("run", "step")
        long = pl.concat([dom, tsk.filter(pl.col("task_group") == group).drop("task_group")])
        wide = long.pivot(on="proxy", index=["run", "step"], values="value", aggregate_function="first")
        g = g_lab.join(wide, on=["run", "step"], how="left").sort("run", "step")
        families = dict(long.select("proxy", "family").unique().iter_rows())
        # a proxy missing for some model (e.g. a column only some evaluations have) is left out, not imputed
        names = sorted(n for n in families if n in g.columns and g[n].null_count() == 0 and g[n].is_not_nan().all())
        dropped = sorted(set(families) - set(names))
        budget = np.zeros(g.height, int) if within == "all" else g.select(pl.struct(within).rank("dense")).to_series().to_numpy()
        out.append(
            GroupData(
                group,
                g.select("run", "step"),
                g["score"].to_numpy(),
                names,
                [families[n] for n in names],
                g.select(names).to_numpy().astype(float),
                budget,
                spec.tie_epsilon,
                dropped,
            )
        )
    return out


# ---- pairwise accuracy ----------------------------------------------------------------------------


def pair_correctness(proxy, diff, valid):
    """Per pair (i, j): 1 if the proxy orders it like the label, 0 if not, 1/2 on a proxy tie; NaN off `valid`."""
    proxy = np.asarray(proxy, float)
    agree = np.sign(proxy[:, None] - proxy[None, :]) * np.sign(diff)
    return np.where(valid, (agree + 1) / 2, np.nan)


def pairwise_accuracy(proxy, score, eps=0.0, comparable=None):
    """Share of unordered comparable, non-tied pairs that `proxy` orders like `score`."""
    score = np.asarray(score, float)
    diff = score[:, None] - score[None, :]
    valid = ~np.eye(len(score), dtype=bool) & (np.abs(diff) >= max(eps, 1e-300))
    if comparable is not None:
        valid &= comparable
    c = pair_correctness(proxy, diff, valid)[np.triu(valid)]
    c = c[~np.isnan(c)]  # a pair whose proxy is NaN (e.g. a loss not measured) is left out
    return float(c.mean()) if c.size else math.nan


def bootstrap_accuracy(correct, rng, n_boot, level=0.95):
    """Percentile interval of the pairwise accuracy when the models are resampled with replacement.

    correct: n x n, symmetric, NaN where a pair does not count. A model drawn m_i times enters
    its pairs m_i times; a model is never paired with itself.
    """
    n = correct.shape[0]
    w = ~np.isnan(correct)
    np.fill_diagonal(w, False)
    c = np.where(w, correct, 0.0)
    m = rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot).astype(float)
    num = np.einsum("bi,ij,bj->b", m, c, m)
    den = np.einsum("bi,ij,bj->b", m, w.astype(float), m)
    acc = num[den > 0] / den[den > 0]
    if acc.size == 0:
        return math.nan, math.nan
    a = (1 - level) / 2
    return float(np.quantile(acc, a)), float(np.quantile(acc, 1 - a))


# ---- learned comparator ---------------------------------------------------------------------------


def pair_features(P, i, j, names=None):
    """Rows of [p_i - p_j, p_i * p_j, p_i, p_j] (each block over all proxies) for pairs (i[k], j[k])."""
    pi, pj = P[np.asarray(i)], P[np.asarray(j)]
    X = np.hstack([pi - pj, pi * pj, pi, pj])
    if names is None:
        return X
    return X, [f"{kind}:{n}" for kind in ("diff", "prod", "i", "j") for n in names]


def train_comparator(P, i, j, y, params, seed):
    """LightGBM binary classifier on pair features; both orders of each pair, so it learns a symmetric task."""
    i, j, y = np.asarray(i), np.asarray(j), np.asarray(y, float)
    X = pair_features(P, np.concatenate([i, j]), np.concatenate([j, i]))
    target = np.concatenate([y, 1 - y])
    lgb_params = {
        "objective": "binary",
        "verbosity": -1,
        "seed": seed,
        "deterministic": True,
        "num_threads": 1,
        "force_col_wise": True,
        "learning_rate": params.learning_rate,
        "num_leaves": params.num_leaves,
        "min_data_in_leaf": params.min_child_samples,
        "min_data_in_bin": 1,
    }
    import lightgbm  # here, not at the top: the decision fit's config check imports this module at parse time

    data = lightgbm.Dataset(X, target, params={"min_data_in_bin": 1, "verbosity": -1})
    return lightgbm.train(lgb_params, data, num_boost_round=params.n_estimators)


def predict_comparator(booster, P, i, j):
    """P(model i better than model j), averaged over both orders so that p(i, j) = 1 - p(j, i)."""
    a = booster.predict(pair_features(P, i, j))
    b = booster.predict(pair_features(P, j, i))
    return (a + 1 - b) / 2


def model_splits(runs, n_splits, train_frac, seed):
    """Random train/test splits of the runs (all of a run's checkpoints on one side), as boolean masks per model."""
    rng = np.random.default_rng(seed)
    unique = np.array(sorted(set(runs)))
    n_train = int(round(train_frac * len(unique)))
    splits = []
    for _ in range(n_splits):
        train_runs = set(rng.permutation(unique)[:n_train])
        train = np.array([r in train_runs for r in runs])
        splits.append((train, ~train))
    return splits


def _pairs(mask, valid):
    """Unordered valid pairs (i < j) with both models in mask."""
    inside = valid & mask[:, None] & mask[None, :]
    return np.nonzero(np.triu(inside))


def _top_k_hit(score_pred, truth, models, budget, k):
    """Per budget group of the given models: is the truly best model among the k ranked highest?"""
    hits = []
    for b in np.unique(budget[models]):
        idx = models[budget[models] == b]
        if len(idx) < 2:
            continue
        v = score_pred[idx[np.argmax(truth[idx])]]
        above, level = np.sum(score_pred[idx] > v), np.sum(score_pred[idx] == v)
        hits.append(min(1.0, max(0.0, (k - above) / level)))  # expected hit when ties are broken at random
    return hits


def evaluate_group(d: GroupData, spec, learned_names: list[str]):
    """Rows of pairwise.parquet and gap-binned rows for one task group."""
    rng = np.random.default_rng(spec.seed)
    n = len(d.score)
    features = [d.proxies.index(p) for p in learned_names]
    splits = model_splits(d.run, spec.splits, spec.train_frac, spec.seed)
    k = spec.top_k
    predictors = list(d.proxies) + [LEARNED]
    heldout = {p: [] for p in predictors}
    hits = {p: [] for p in predictors}
    chance = []
    oos_sum, oos_n = np.zeros((n, n)), np.zeros((n, n))  # learned comparator's out-of-split correctness per pair
    skipped = []
    for s, (train, test) in enumerate(splits):
        ti, tj = _pairs(train, d.valid)
        ei, ej = _pairs(test, d.valid)
        # a split counts for every predictor or for none, so that their held-out numbers compare
        if len(ei) == 0:
            skipped.append(f"split {s}: no comparable non-tied pair among the test models")
            continue
        if len(ti) < MIN_TRAIN_PAIRS or not features:
            skipped.append(f"split {s}: {len(ti)} comparable non-tied training pairs, need {MIN_TRAIN_PAIRS}")
            continue
        truth = d.diff[ei, ej] > 0
        test_idx = np.nonzero(test)[0]
        for p, col in enumerate(d.proxies):
            pred = np.sign(d.P[ei, p] - d.P[ej, p])
            heldout[col].append(float(np.mean(np.where(pred == 0, 0.5, (pred > 0) == truth))))
            hits[col] += _top_k_hit(d.P[:, p], d.score, test_idx, d.budget, k)
        chance += _top_k_hit(np.zeros(n), d.score, test_idx, d.budget, k)  # a proxy that ties everything
        y = d.diff[ti, tj] > 0
        booster = train_comparator(d.P[:, features], ti, tj, y, spec.lightgbm, spec.seed + s)
        prob = predict_comparator(booster, d.P[:, features], ei, ej)
        correct = np.where(prob == 0.5, 0.5, (prob > 0.5) == truth)
        heldout[LEARNED].append(float(np.mean(correct)))
        oos_sum[ei, ej] += correct
        oos_n[ei, ej] += 1
        # rank the test models by their mean win probability against the other test models
        ai, aj = np.nonzero(np.triu(d.comparable & test[:, None] & test[None, :]))
        win = predict_comparator(booster, d.P[:, features], ai, aj)
        strength = np.zeros(n)
        games = np.zeros(n)
        np.add.at(strength, ai, win)
        np.add.at(strength, aj, 1 - win)
        np.add.at(games, ai, 1)
        np.add.at(games, aj, 1)
        hits[LEARNED] += _top_k_hit(strength / np.maximum(games, 1), d.score, test_idx, d.budget, k)

    oos = np.where(oos_n > 0, oos_sum / np.maximum(oos_n, 1), np.nan)
    oos = np.where(np.isnan(oos), oos.T, oos)  # symmetric: pair (j, i) is pair (i, j)
    correctness = {col: pair_correctness(d.P[:, p], d.diff, d.valid) for p, col in enumerate(d.proxies)}
    correctness[LEARNED] = np.where(d.valid, oos, np.nan)
    base = {
        "task_group": d.group,
        "n_models": n,
        "n_pairs": d.n_pairs,
        "n_ties": d.n_ties,
        "top_k": k,
        "top_k_chance": float(np.mean(chance)) if chance else math.nan,
    }
    rows = []
    families = dict(zip(d.proxies, d.families))
    for col in predictors:
        c = correctness[col]
        upper = np.triu(~np.isnan(c))
        acc = float(np.mean(c[upper])) if upper.any() else math.nan
        lo, hi = bootstrap_accuracy(c, rng, spec.bootstrap)
        h = heldout[col]
        note = ""
        if col == LEARNED:
            note = (
                f"accuracy: out-of-split, over {int(upper.sum())} of {d.n_pairs} pairs tested at least once"
                if h
                else "not fitted: " + "; ".join(skipped[:3])
            )
        elif not h:
            note = "no usable split: " + "; ".join(skipped[:3])
        rows.append(
            {
                **base,
                "proxy": col,
                "family": families.get(col, LEARNED),
                "features": ",".join(learned_names) if col == LEARNED else col,
                "accuracy": acc,
                "ci_low": lo,
                "ci_high": hi,
                "heldout_mean": float(np.mean(h)) if h else math.nan,
                "heldout_std": float(np.std(h)) if h else math.nan,
                "heldout_min": float(np.min(h)) if h else math.nan,
                "heldout_max": float(np.max(h)) if h else math.nan,
                "n_splits": len(h),
                "top_k_recall": float(np.mean(hits[col])) if hits[col] else math.nan,
                "note": note,
            }
        )
    gap_rows = gap_accuracy(d, correctness, spec.gap_bins)
    return rows, gap_rows, skipped


def gap_accuracy(d: GroupData, correctness: dict, n_bins: int):
    """Accuracy per quantile bin of the true post-SFT gap |s_i - s_j| (the seed's accuracy-vs-gap plot)."""
    iu = np.nonzero(np.triu(d.valid))
    gap = np.abs(d.diff[iu])
    if gap.size == 0:
        return []
    edges = np.unique(np.quantile(gap, np.linspace(0, 1, n_bins + 1)))
    bins = np.clip(np.searchsorted(edges, gap, side="right") - 1, 0, max(len(edges) - 2, 0))
    rows = []
    for col, c in correctness.items():
        values = c[iu]
        for b in range(max(len(edges) - 1, 1)):
            sel = (bins == b) & ~np.isnan(values)
            rows.append(
                {
                    "task_group": d.group,
                    "proxy": col,
                    "bin": b,
                    "gap_low": float(edges[b]),
                    "gap_high": float(edges[min(b + 1, len(edges) - 1)]),
                    "gap_mean": float(np.mean(gap[bins == b])) if (bins == b).any() else math.nan,
                    "accuracy": float(np.mean(values[sel])) if sel.any() else math.nan,
                    "n_pairs": int(sel.sum()),
                }
            )
    return rows


def learned_proxies(d: GroupData, spec) -> list[str]:
    wanted = spec.learned_proxies
    if wanted == "all":
        return list(d.proxies)
    missing = [p for p in wanted if p not in d.proxies]
    if missing:
        raise ConfigError(
            f"{_field('learned_proxies')}: {missing} are not among the proxies of the tables "
            f"(task group {d.group!r}); available: {d.proxies}"
        )
    return list(wanted)


# ---- the stage ------------------------------------------------------------------------------------

PAIRWISE_SCHEMA = {
    "task_group": pl.String,
    "proxy": pl.String,
    "family": pl.String,
    "features": pl.String,
    "accuracy": pl.Float64,
    "ci_low": pl.Float64,
    "ci_high": pl.Float64,
    "heldout_mean": pl.Float64,
    "heldout_std": pl.Float64,
    "heldout_min": pl.Float64,
    "heldout_max": pl.Float64,
    "n_splits": pl.Int64,
    "top_k": pl.Int64,
    "top_k_recall": pl.Float64,
    "top_k_chance": pl.Float64,
    "n_models": pl.Int64,
    "n_pairs": pl.Int64,
    "n_ties": pl.Int64,
    "note": pl.String,
}
GAP_SCHEMA = {
    "task_group": pl.String,
    "proxy": pl.String,
    "bin": pl.Int64,
    "gap_low": pl.Float64,
    "gap_high": pl.Float64,
    "gap_mean": pl.Float64,
    "accuracy": pl.Float64,
    "n_pairs": pl.Int64,
}


def summarize(results: pl.DataFrame, skipped: dict) -> dict:
    """Per task group: perplexity against the post-SFT score, the best single proxy and the learned comparator."""
    out = {}
    for group in sorted(results["task_group"].unique()):
        r = results.filter(pl.col("task_group") == group)
        row = {p["proxy"]: p for p in r.iter_rows(named=True)}
        ppl, learned = row.get("inv_ppl"), row[LEARNED]
        singles = r.filter((pl.col("proxy") != LEARNED) & pl.col("heldout_mean").is_not_nan()).sort(
            "heldout_mean", "proxy", descending=[True, False]
        )
        best = singles.row(0, named=True) if singles.height else None
        g = {
            "n_models": learned["n_models"],
            "n_pairs": learned["n_pairs"],
            "n_ties": learned["n_ties"],
            "learned": {
                k: json_safe(learned[k])
                for k in ("heldout_mean", "heldout_std", "accuracy", "ci_low", "ci_high", "top_k_recall", "n_splits", "note")
            },
            "best_single_proxy": best
            and {
                k: json_safe(best[k])
                for k in ("proxy", "heldout_mean", "heldout_std", "accuracy", "ci_low", "ci_high", "top_k_recall")
            },
            "skipped_splits": skipped[group][0],
            "dropped_proxies": skipped[group][1],
        }
        if ppl is not None:
            err_ppl, err_learned = 1 - ppl["heldout_mean"], 1 - learned["heldout_mean"]
            g["perplexity"] = {
                **{
                    k: json_safe(ppl[k]) for k in ("accuracy", "ci_low", "ci_high", "heldout_mean", "heldout_std", "top_k_recall")
                },
                # the seed's finding: 1/PPL orders pairs unlike the post-SFT score (accuracy well below 1)
                "disagreement_rate": json_safe(1 - ppl["accuracy"]),
                "worse_than_chance": bool(ppl["ci_high"] < 0.5),
                "better_than_chance": bool(ppl["ci_low"] > 0.5),
                "learned_error_reduction": json_safe((err_ppl - err_learned) / err_ppl) if err_ppl > 0 else None,
            }
        out[group] = g
    return out


def fit_pairwise(tables: dict, spec):
    """(pairwise table, gap-binned table, summary dict) for every task group of the spec."""
    data = build_dataset(tables, spec)
    names = {d.group: learned_proxies(d, spec) for d in data}  # checked for every group before any fitting
    rows, gap_rows, skipped = [], [], {}
    for d in data:
        if len(d.score) < 2:
            raise ConfigError(
                f"{_field('task_groups')} ({d.group!r}): {len(d.score)} model(s) with post-SFT scores, need at least 2"
            )
        r, g, splits_skipped = evaluate_group(d, spec, names[d.group])
        skipped[d.group] = (splits_skipped, d.dropped)
        rows += r
        gap_rows += g
    results = pl.DataFrame(rows, schema=PAIRWISE_SCHEMA)
    return results, pl.DataFrame(gap_rows, schema=GAP_SCHEMA), summarize(results, skipped)
