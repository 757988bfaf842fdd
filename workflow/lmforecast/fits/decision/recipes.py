"""Which recipe wins at the target scales, decided from smaller runs (DataDecide, Magnusson et al. 2025).

The outcome is a task's score (fit.decision.metric at fit.decision.shots) at each target scale, averaged
over the recipe's runs there; tasks include imported task groups (e.g. avg46). Proxies, each oriented
higher = better:
  at each smaller scale     every task_scores metric of the same task (<metric>@<k>shot, e.g. acc@0shot)
                            and the held-out losses (inv_ppl, -loss[<domain>]), as fit_pairwise reads them
  extrapolated              fit_scaling's prediction of the target runs' score by each predictor (its
                            back-test: the predictor fitted on the smaller runs of each recipe), and of
                            their loss where the chain has one (-loss_pred[<predictor>])
Decision accuracy is the share of pairs of recipes a proxy orders as the outcome does (pairwise/decision.py).
"""

import polars as pl

from lmforecast.config import ConfigError
from lmforecast.fits.pairwise.decision import final_scales, recipe_decisions
from lmforecast.fits.pairwise.proxies import domain_proxies, task_proxies

EXTRAPOLATED = "extrapolated"  # the scale of fit_scaling's predictions: fitted on the smaller runs
SCHEMA = {
    "task": pl.String,
    "target_scale": pl.String,
    "scale": pl.String,
    "flops": pl.Float64,
    "proxy": pl.String,
    "family": pl.String,
    "accuracy": pl.Float64,
    "n_recipes": pl.Int64,
    "n_pairs": pl.Int64,
    "n_ties": pl.Int64,
    "proxy_best": pl.String,  # the recipe the proxy ranks first
    "best": pl.String,  # the recipe that scores highest at the target scale
}


def _tasks(task_scores: pl.DataFrame, spec) -> list[str]:
    scored = task_scores.filter((pl.col("metric") == spec.metric) & (pl.col("shots") == spec.shots))
    present = sorted(set(scored["task"]))
    if not present:
        found = sorted(set(zip(task_scores["metric"], task_scores["shots"])))
        raise ConfigError(
            f"fit.decision.metric/shots: no task_scores rows of {spec.metric!r} at {spec.shots} shots; "
            f"the table has (metric, shots) {found}"
        )
    if spec.tasks == "all":
        return present
    missing = sorted(set(spec.tasks) - set(present))
    if missing:
        raise ConfigError(f"fit.decision.tasks: {missing} have no {spec.metric!r} at {spec.shots} shots; present: {present}")
    return list(spec.tasks)


def _targets(finals: pl.DataFrame, compute: pl.DataFrame, targets) -> list[str]:
    if targets == "largest":
        return [compute["scale"][-1]]
    missing = sorted(set(targets) - set(finals["run"]))
    if missing:
        raise ConfigError(f"fit.decision.targets: runs {missing} are not in the runs table")
    names = set(finals.filter(pl.col("run").is_in(list(targets)))["scale"])
    return [s for s in compute["scale"] if s in names]


def _extrapolated(predictions: pl.DataFrame | None, task: str, finals: pl.DataFrame, target: str) -> pl.DataFrame:
    """fit_scaling's predictions for the target scale's runs, as proxies per recipe."""
    columns = {"recipe": pl.String, "proxy": pl.String, "family": pl.String, "value": pl.Float64}
    if predictions is None:
        return pl.DataFrame(schema=columns)
    runs = finals.filter(pl.col("scale") == target).select("run", "recipe")
    p = predictions.filter(pl.col("task") == task).join(runs, on="run")
    score = p.select("recipe", "run", "predictor", pl.col("predictor").alias("proxy"), pl.col("score_pred").alias("value"))
    loss = p.filter(pl.col("loss_pred").is_finite()).select(
        "recipe",
        "run",
        "predictor",
        pl.format("-loss_pred[{}]", "predictor").alias("proxy"),
        (-pl.col("loss_pred")).alias("value"),
    )
    both = pl.concat([score, loss]).filter(pl.col("value").is_finite())
    return (
        both.group_by("recipe", "proxy")
        .agg(pl.col("value").mean())
        .with_columns(pl.lit("scaling").alias("family"))
        .select(list(columns))
    )


def setup(tables: dict, spec):
    """The runs' last checkpoints with scale and recipe, the scales by compute, the tasks and the target
    scales; a ConfigError naming the setting where the tables do not fit it (cheap: the config check runs it)."""
    finals, compute = final_scales(tables["runs"], tables["checkpoints"], spec.scale, spec.recipe, "fit.decision")
    return finals, compute, _tasks(tables["task_scores"], spec), _targets(finals, compute, spec.targets)


def decisions(tables: dict, spec, predictions: pl.DataFrame | None = None) -> pl.DataFrame:
    """Decision accuracy per task, target scale, smaller scale (or `extrapolated`) and proxy."""
    scores = tables["task_scores"]
    finals, compute, tasks, targets = setup(tables, spec)
    keys = finals.select("run", "step", "scale", "recipe")
    dom = domain_proxies(tables["domain_losses"]) if tables["domain_losses"].height else None
    tsk = task_proxies(scores, {t: [t] for t in tasks})
    outcome = (
        scores.filter((pl.col("metric") == spec.metric) & (pl.col("shots") == spec.shots) & pl.col("task").is_in(tasks))
        .group_by("run", "step", "task")
        .agg(pl.col("value").mean())  # over prompts
        .join(keys, on=["run", "step"])
        .group_by("task", "scale", "recipe")
        .agg(pl.col("value").mean().alias("target"))  # over the recipe's runs at the scale (seeds)
    )
    order, rows = compute["scale"].to_list(), []
    for task in tasks:
        proxies = tsk.filter(pl.col("task_group") == task).drop("task_group")
        if dom is not None:
            proxies = pl.concat([dom, proxies])
        per_recipe = (
            proxies.join(keys, on=["run", "step"]).group_by("scale", "recipe", "proxy", "family").agg(pl.col("value").mean())
        )
        by_scale = {s: df for (s,), df in per_recipe.partition_by("scale", as_dict=True, include_key=False).items()}
        for target in targets:
            truth = outcome.filter((pl.col("task") == task) & (pl.col("scale") == target)).select("recipe", "target")
            smaller = compute.head(order.index(target))  # the scales ordered before it by compute
            at_scales = [(s, f, by_scale[s]) for s, f in smaller.iter_rows() if s in by_scale]
            at_scales.append((EXTRAPOLATED, None, _extrapolated(predictions, task, finals, target)))
            for scale, flops, at in at_scales:
                # a proxy or outcome missing for a recipe (NaN) leaves that recipe out of its pairs
                at = at.select("recipe", "proxy", "family", "value").join(truth, on="recipe")
                at = at.filter(pl.col("value").is_finite() & pl.col("target").is_finite())
                for r in recipe_decisions(at, spec.tie_epsilon):
                    rows.append({"task": task, "target_scale": target, "scale": scale, "flops": flops, **r})
    return pl.DataFrame(rows, schema=SCHEMA)


def summary(table: pl.DataFrame) -> list[dict]:
    """Mean decision accuracy over the tasks, per target scale, smaller scale and proxy."""
    return (
        table.filter(pl.col("accuracy").is_not_nan())
        .group_by("target_scale", "scale", "proxy", "family")
        .agg(
            pl.col("flops").first(),
            pl.col("accuracy").mean().alias("mean_accuracy"),
            pl.len().alias("n_tasks"),
        )
        .sort("target_scale", "flops", "scale", "proxy", nulls_last=True)
        .to_dicts()
    )
