"""Data decisions from small runs (DataDecide, Magnusson et al. 2025): does the ranking of recipes (e.g.
pre-training datasets) at a small scale, or extrapolated from the small runs, pick the one that wins at
the target scale? The analysis is in recipes.py; this module registers the fit (kept free of heavy
imports: Snakemake reads it when it parses the workflow). It needs no SFT, so it runs on imported results.
"""

from dataclasses import dataclass

from lmforecast.fits.registry import Fit, Settings, shots_errors


@dataclass(frozen=True)
class DecisionSettings(Settings):
    scale: tuple[str, ...]  # runs columns that make a scale, e.g. [n_params, tokens_planned]
    recipe: tuple[str, ...]  # runs columns that make a recipe, e.g. [mixture]
    targets: str | tuple[str, ...]  # largest (the scale of largest mean compute), or runs whose scales are targets
    metric: str  # the task_scores metric decided at the target scales
    shots: int
    tasks: str | tuple[str, ...] = "all"  # all tasks with the metric, or a list (imported task groups included)
    tie_epsilon: float = 0.0  # pairs of recipes closer than this at the target are ties: counted, left out
    predictors: bool = False  # also decide by fit_scaling's extrapolation to the target runs (its back-test)


def run(fit) -> list[str]:
    import polars as pl

    from lmforecast import io
    from lmforecast.fits.decision.recipes import decisions, summary
    from lmforecast.tables import write

    predictions = None
    if fit.settings.predictors:
        path = fit.out("scaling_predictions.parquet")
        if not path.exists():
            raise FileNotFoundError(f"{path}: fit.decision.predictors needs fit_scaling's back-test predictions")
        predictions = pl.read_parquet(path)
    table = decisions(fit.tables, fit.settings, predictions)
    write(table.to_arrow(), fit.out("decision_accuracy.parquet"))
    means = summary(table)
    # each target's winner among all its recipes (a smaller scale may lack some: its rows rank fewer)
    best = table.sort("n_recipes", descending=True, maintain_order=True).unique(["task", "target_scale"], keep="first")
    io.write_json(
        io.json_safe(
            {
                "config": fit.spec,
                "best_at_target": {t: dict(g.select("task", "best").iter_rows()) for (t,), g in best.group_by("target_scale")},
                "mean_over_tasks": means,
            }
        ),
        fit.out("decision_accuracy.json"),
    )
    return [f"{m['target_scale']} <- {m['scale']}: {m['proxy']} {m['mean_accuracy']:.3f} ({m['n_tasks']} tasks)" for m in means]


def section(fits_dir, report_dir) -> str:
    import polars as pl

    from lmforecast import io
    from lmforecast.report import html

    means = io.read_json(html.require(fits_dir / "decision_accuracy.json", "decision accuracy"))["mean_over_tasks"]
    if not means:
        return html.note("no scale has two recipes to compare (fit.decision.scale, recipe)")
    table = pl.DataFrame(means).select("target_scale", "scale", "proxy", "mean_accuracy", "n_tasks")
    return "<p>Decision accuracy (share of pairs of recipes ordered as at the target scale), mean over tasks.</p>" + (
        html.table(table, sortable=True)
    )


def reads(config) -> tuple[str, ...]:
    """fit_scaling's back-test when the decision uses its predictions."""
    return ("scaling_predictions.parquet",) if config["fit"]["decision"].get("predictors") else ()


def check(config) -> list[str]:
    """Target runs that exist; predictions of the decided metric for them when `predictors` asks for them."""
    spec, errors = config["fit"]["decision"], shots_errors(config, "decision")
    names = [r["name"] for r in (config["import"]["runs"] if "import" in config else config["runs"])]
    targets = spec["targets"]
    if targets != "largest":
        missing = [t for t in targets if t not in names]
        if missing:
            errors.append(f"fit.decision.targets: {missing} are not runs of this config; expected run names or 'largest'")
    if spec.get("predictors"):
        scaling = config["fit"]["scaling"]
        for key in ("metric", "shots"):
            if scaling[key] != spec[key]:
                errors.append(
                    f"fit.decision.predictors: fit.scaling.{key} is {scaling[key]!r}, fit.decision.{key} {spec[key]!r}; "
                    "the predictions must be of the decided score"
                )
        holdout = scaling["holdout"]
        if targets != "largest" and holdout != "largest_compute":
            unpredicted = [t for t in targets if t not in holdout]
            if unpredicted:
                errors.append(
                    f"fit.decision.predictors: targets {unpredicted} are not in fit.scaling.holdout, so fit_scaling "
                    "does not predict them"
                )
    return errors


def check_imported(config, tables) -> list[str]:
    """On imports, the scale, recipe, metric and tasks against the imported tables, before any job."""
    import polars as pl

    from lmforecast.config import ConfigError
    from lmforecast.fits.decision.recipes import setup

    t = {name: pl.from_arrow(tables[name]) for name in ("runs", "checkpoints", "task_scores")}
    try:  # what the fit would refuse when it runs (its scales, recipes, tasks and targets), refused now
        setup(t, DecisionSettings.from_dict(config["fit"]["decision"]))
    except ConfigError as e:
        return [str(e)]
    return []


SCHEMA = """
type: object
additionalProperties: false
required: [scale, recipe, targets, metric, shots]
properties:
  scale: {type: array, minItems: 1, uniqueItems: true, items: {$ref: "#/$defs/run_column"}}
  recipe: {type: array, minItems: 1, uniqueItems: true, items: {$ref: "#/$defs/run_column"}}
  targets:
    description: "'largest' or a list of run names (their scales are the targets)"
    oneOf:
      - {const: largest}
      - {type: array, minItems: 1, uniqueItems: true, items: {type: string}}
  metric: {type: string}
  shots: {type: integer, minimum: 0}
  tasks:
    description: "'all' or a list of tasks"
    oneOf:
      - {const: all}
      - {type: array, minItems: 1, uniqueItems: true, items: {type: string}}
  tie_epsilon: {type: number, minimum: 0}
  predictors: {type: boolean}
"""

FIT = Fit(
    name="decision",
    title="Data decisions from small runs (DataDecide)",
    settings=DecisionSettings,
    schema=SCHEMA,
    tables=("runs", "checkpoints", "domain_losses", "task_scores"),
    outputs=("decision_accuracy.parquet", "decision_accuracy.json"),
    run=run,
    section=section,
    reads=reads,
    check=check,
    check_imported=check_imported,
    order=15,
)
