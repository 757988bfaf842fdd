"""Decision accuracy in the DataDecide sense (Magnusson et al. 2025).

A recipe is what a sweep compares (by default mixture, objective and learning rate); a scale
is where it is measured (by default size and token budget). For each smaller scale and each
proxy measured there, decision accuracy is the share of pairs of recipes that the proxy orders
like the post-SFT score at the largest scale (largest mean compute) orders them. Runs of one
recipe at one scale (e.g. seeds) are averaged. Each run's last checkpoint is used. The
post-SFT score itself at the small scale is the proxy `sft_score`.
"""

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


def decision_accuracy(tables: dict, spec) -> pl.DataFrame:
    cfg = spec.decision
    runs, ck = tables["runs"], tables["checkpoints"]
    for key in ("scale", "recipe"):
        unknown = sorted(set(getattr(cfg, key)) - set(runs.columns))
        if unknown:
            raise ConfigError(
                f"fit.pairwise.decision.{key}: {unknown} are not columns of the runs table; "
                f"expected some of {sorted(runs.columns)}"
            )
    finals = ck.join(ck.group_by("run").agg(pl.col("step").max()), on=["run", "step"]).select("run", "step", "flops")
    finals = finals.join(runs, on="run").with_columns(
        _scale_name(cfg.scale).alias("scale"),
        pl.concat_str([pl.col(c).cast(pl.String) for c in cfg.recipe], separator="/").alias("recipe"),
    )
    compute = finals.group_by("scale").agg(pl.col("flops").mean()).sort("flops", "scale")
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
            for (proxy, family), p in sorted(at.group_by("proxy", "family"), key=lambda kv: kv[0]):
                if p.height < 2:
                    continue
                p = p.sort("recipe")
                target_score = p["target"].to_numpy()
                n = p.height
                diff = np.abs(target_score[:, None] - target_score[None, :])[np.triu_indices(n, 1)]
                ties = int(np.sum(diff < max(spec.tie_epsilon, 1e-300)))
                rows.append(
                    {
                        "task_group": group,
                        "scale": scale,
                        "flops": flops,
                        "target_scale": target,
                        "proxy": proxy,
                        "family": family,
                        "accuracy": pairwise_accuracy(p["value"].to_numpy(), target_score, spec.tie_epsilon),
                        "n_recipes": n,
                        "n_pairs": len(diff) - ties,
                        "n_ties": ties,
                    }
                )
    return pl.DataFrame(rows, schema=DECISION_SCHEMA)
