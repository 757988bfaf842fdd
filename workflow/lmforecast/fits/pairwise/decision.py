"""Decision accuracy in the DataDecide sense (Magnusson et al. 2025).

A recipe is what a sweep compares (by default mixture, objective and learning rate); a scale
is where it is measured (by default size and token budget). For each smaller scale and each
proxy measured there, decision accuracy is the share of pairs of recipes that the proxy orders
like the outcome at the target scale orders them. Runs of one recipe at one scale (e.g. seeds)
are averaged. Each run's last checkpoint is used.

Two outcomes use it: the post-SFT score at the largest scale (fit_pairwise's decision.parquet,
where the post-SFT score itself at the small scale is the proxy `sft_score`), and a task's
pre-SFT score at chosen target scales (fit_decision, which also runs on imported results).
"""

import itertools

import numpy as np
import polars as pl

from lmforecast.config import ConfigError
from lmforecast.fits.pairwise.proxies import domain_proxies, labels, pairwise_accuracy, task_groups, task_proxies

DECISION_SCHEMA = {
    "task_group": pl.String,
    "scale": pl.String,
    "flops": pl.Float64,
    "target_scale": pl.String,
    "proxy": pl.String,
    "family": pl.String,
    "accuracy": pl.Float64,
    "n_recipes": pl.Int64,
    "n_pairs": pl.Int64,
    "n_ties": pl.Int64,
}


def _scale_name(columns):
    return pl.concat_str([pl.format(f"{c}={{}}", pl.col(c)) for c in columns], separator=",")


def final_scales(runs: pl.DataFrame, checkpoints: pl.DataFrame, scale, recipe, field: str):
    """Each run's last checkpoint with its scale and recipe (run, step, flops, scale, recipe), and the
    scales by mean compute (scale, flops; ascending). Scale and recipe are columns of the runs table;
    `field` names the settings in errors."""
    for key, columns in (("scale", scale), ("recipe", recipe)):
        unknown = sorted(set(columns) - set(runs.columns))
        if unknown:
            raise ConfigError(
                f"{field}.{key}: {unknown} are not columns of the runs table; expected some of {sorted(runs.columns)}"
            )
    ck = checkpoints
    finals = ck.join(ck.group_by("run").agg(pl.col("step").max()), on=["run", "step"]).select("run", "step", "flops")
    finals = (
        finals.join(runs, on="run")
        .with_columns(
            _scale_name(scale).alias("scale"),
            pl.concat_str([pl.col(c).cast(pl.String) for c in recipe], separator="/").alias("recipe"),
        )
        .select("run", "step", "flops", "scale", "recipe")
    )
    for key, columns in (("scale", scale), ("recipe", recipe)):
        unset = finals.filter(pl.col(key).is_null())["run"].to_list()  # e.g. size on imported runs
        if unset:
            raise ConfigError(
                f"{field}.{key}: {list(columns)} are not all set for runs {sorted(unset)[:5]} ({len(unset)} in all)"
            )
    return finals, finals.group_by("scale").agg(pl.col("flops").mean()).sort("flops", "scale")


def _best(recipes, target_score, eps):
    """The recipe with the highest target score; None where another is within eps of it (a tie)."""
    order = np.argsort(-target_score)
    return None if abs(target_score[order[0]] - target_score[order[1]]) < max(eps, 1e-300) else recipes[int(order[0])]


def recipe_decisions(at: pl.DataFrame, eps: float) -> list[dict]:
    """Per proxy of `at` (recipe, proxy, family, value, target: one row per recipe and proxy): the share
    of pairs of recipes that the proxy orders like `target` (pairs closer than eps in target are ties,
    counted and left out), the recipe it ranks first and the one the target does (None on a tie)."""
    at = at.sort("proxy", "family", "recipe")  # one sort, then slices: thousands of calls on a public set
    keys = list(zip(at["proxy"].to_list(), at["family"].to_list()))
    recipes, values, targets = at["recipe"].to_list(), at["value"].to_numpy(), at["target"].to_numpy()
    rows, start = [], 0
    for (proxy, family), group in itertools.groupby(keys):
        n = len(list(group))
        lo, start = start, start + n
        if n < 2:
            continue
        recipe, value, target_score = recipes[lo:start], values[lo:start], targets[lo:start]
        diff = np.abs(target_score[:, None] - target_score[None, :])[np.triu_indices(n, 1)]
        ties = int(np.sum(diff < max(eps, 1e-300)))
        rows.append(
            {
                "proxy": proxy,
                "family": family,
                "accuracy": pairwise_accuracy(value, target_score, eps),
                "n_recipes": n,
                "n_pairs": len(diff) - ties,
                "n_ties": ties,
                "proxy_best": recipe[int(np.argmax(value))],
                "best": _best(recipe, target_score, eps),
            }
        )
    return rows


def decision_accuracy(tables: dict, spec) -> pl.DataFrame:
    """fit_pairwise's: recipes ranked at each smaller scale vs their post-SFT score at the largest."""
    finals, compute = final_scales(
        tables["runs"], tables["checkpoints"], spec.decision.scale, spec.decision.recipe, "fit.pairwise.decision"
    )
    if compute.height < 2:
        return pl.DataFrame([], schema=DECISION_SCHEMA)
    target = compute["scale"][-1]
    lab = (
        labels(tables["sft_scores"], spec)
        .rename({"score": "value"})
        .with_columns(pl.lit("sft_score").alias("proxy"), pl.lit("post_sft").alias("family"))
    )
    dom = domain_proxies(tables["domain_losses"])
    groups = task_groups(spec)
    tsk = task_proxies(tables["task_scores"], groups)
    rows = []
    for group in sorted(groups):
        proxies = pl.concat(
            [
                dom,
                tsk.filter(pl.col("task_group") == group).drop("task_group"),
                lab.filter(pl.col("task_group") == group).select("run", "step", "proxy", "family", "value"),
            ]
        )
        per_recipe = (
            proxies.join(finals.select("run", "step", "scale", "recipe"), on=["run", "step"])
            .group_by("scale", "recipe", "proxy", "family")
            .agg(pl.col("value").mean())
        )
        truth = per_recipe.filter((pl.col("scale") == target) & (pl.col("proxy") == "sft_score")).select(
            "recipe", pl.col("value").alias("target")
        )
        for scale, flops in compute.head(compute.height - 1).iter_rows():
            at = per_recipe.filter(pl.col("scale") == scale).join(truth, on="recipe")
            for r in recipe_decisions(at, spec.tie_epsilon):
                r = {k: v for k, v in r.items() if k not in ("proxy_best", "best")}
                rows.append({"task_group": group, "scale": scale, "flops": flops, "target_scale": target, **r})
    return pl.DataFrame(rows, schema=DECISION_SCHEMA)
