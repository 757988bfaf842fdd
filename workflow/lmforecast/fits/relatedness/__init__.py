"""Task and point relatedness from training dynamics (the SELECT proposal's objectives 2 and 3):
which tasks, and which examples, are learned alike over pre-training? The analysis is in
trajectories.py; this module registers the fit (kept free of heavy imports: Snakemake reads it
when it parses the workflow).
"""

from dataclasses import dataclass

from lmforecast.fits.registry import Figure, Fit, Settings, shots_errors


@dataclass(frozen=True)
class RelatednessSettings(Settings):
    shots: int
    clusters: int  # groups of examples per task
    degree: int  # Legendre degree of the O(n) method's per-run trajectory features
    seed: int
    prompt: str | dict | None = None  # None: each task's first prompt
    # the task_scores metric whose trajectories task relatedness correlates; None: logprob_correct (the mean
    # NLL's negation, the same r). Set on imported results (acc), where only task relatedness runs.
    metric: str | None = None


NO_EXAMPLES = (
    "point relatedness needs per-example scores (example_scores: example, logprob_correct at every checkpoint), "
    "and this sweep has none (imported results hold each task's scores only); only task relatedness ran"
)


FIGURES = (
    Figure(
        "task_relatedness",
        """Task relatedness: Pearson correlation between two tasks' mean negative
log-likelihood of the correct answer (or the metric fit.relatedness.metric names) over every checkpoint
of every run, with its p-value in each cell.""",
    ),
    Figure(
        "point_relatedness",
        """Point relatedness, one panel per task: each example placed by MDS of the
distance 1 - r between examples' NLL trajectories over the checkpoints (the O(n^2) reference), coloured
by the groups of the O(n) method (K-means on per-run Legendre coefficients of the trajectories). The
title gives the adjusted Rand index between the two groupings and the correlation of their distances.""",
    ),
)


def run(fit) -> list[str]:
    from lmforecast import io
    from lmforecast.fits.relatedness.trajectories import point_relatedness, task_relatedness
    from lmforecast.report import plots
    from lmforecast.report.html import write_caption
    from lmforecast.tables import write

    matrix = task_relatedness(fit.tables["task_scores"], fit.settings)
    write(matrix.to_arrow(), fit.out("task_relatedness.parquet"))
    plots.plot_task_relatedness(matrix, fit.figure("task_relatedness"), fit.settings.metric or "mean NLL")
    write_caption(FIGURES[0].caption, fit.figure("task_relatedness"))
    lines = [f"task relatedness:\n{matrix}"]
    if fit.tables["example_scores"].height == 0:  # imported results: no trajectories of examples
        import polars as pl

        columns = {"task": pl.String, "prompt": pl.String, "example": pl.String, "group_correlation": pl.Int64}
        columns |= {"group_polynomial": pl.Int64, "mds_x": pl.Float64, "mds_y": pl.Float64}
        write(pl.DataFrame(schema=columns).to_arrow(), fit.out("point_relatedness.parquet"))
        io.write_json({"config": fit.spec, "point_relatedness": [], "note": NO_EXAMPLES}, fit.out("point_relatedness.json"))
        return [*lines, NO_EXAMPLES]
    points, comparison = point_relatedness(fit.tables["example_scores"], fit.settings)
    write(points.to_arrow(), fit.out("point_relatedness.parquet"))
    io.write_json(
        io.json_safe({"config": fit.spec, "point_relatedness": comparison.to_dicts()}), fit.out("point_relatedness.json")
    )
    plots.plot_point_relatedness(points, comparison, fit.figure("point_relatedness"))
    write_caption(FIGURES[1].caption, fit.figure("point_relatedness"))
    return [*lines, f"point relatedness, O(n) vs O(n^2):\n{comparison}"]


def section(fits_dir, report_dir) -> str:
    from lmforecast import io
    from lmforecast.report import html

    note = io.read_json(fits_dir / "point_relatedness.json").get("note")
    return html.figure(report_dir / "task_relatedness.png") + (
        html.note(note) if note else html.figure(report_dir / "point_relatedness.png")
    )


def figures(config) -> tuple:
    """Both figures; on imported results only task relatedness (no per-example scores to group)."""
    return FIGURES[:1] if "import" in config else FIGURES


def needs_training(config) -> bool:
    """On imported results task relatedness runs when fit.relatedness.metric names one of their metrics."""
    return config["fit"]["relatedness"].get("metric") is None


def check(config) -> list[str]:
    """shots as every fit's; the metric one that task_scores holds (on imports: check_imported)."""
    errors = shots_errors(config, "relatedness")
    metric = config["fit"]["relatedness"].get("metric")
    if metric is None or "import" in config:
        return errors
    from lmforecast.measure.tasks import SCORED_METRICS

    if metric not in SCORED_METRICS:
        errors.append(
            f"fit.relatedness.metric: {metric!r} is not a metric of task_scores; expected one of {list(SCORED_METRICS)}"
        )
    return errors


def check_imported(config, tables) -> list[str]:
    """On imports, the metric one of the imported files' (tables: as the config check read them)."""
    metric = config["fit"]["relatedness"].get("metric")
    imported = sorted(set(tables["task_scores"].column("metric").to_pylist()))
    if metric is None or metric in imported:
        return []
    return [
        f"fit.relatedness.metric: {metric!r} is not among the imported metrics {imported}; imported results hold "
        "each task's scores per checkpoint, no per-example log-likelihoods (example_scores: example, logprob_correct)"
    ]


SCHEMA = """
type: object
additionalProperties: false
required: [shots, clusters, degree, seed]
properties:
  shots: {type: integer, minimum: 0}
  prompt: {$ref: "#/$defs/prompt_choice"}
  clusters: {type: integer, minimum: 2}
  degree: {type: integer, minimum: 0}
  seed: {type: integer, minimum: 0}
  metric: {type: [string, "null"]}
"""

FIT = Fit(
    name="relatedness",
    title="Task and point relatedness",
    settings=RelatednessSettings,
    schema=SCHEMA,
    tables=("task_scores", "example_scores"),
    outputs=("task_relatedness.parquet", "point_relatedness.parquet", "point_relatedness.json"),
    figures=figures,
    run=run,
    section=section,
    needs_training=needs_training,
    check=check,
    check_imported=check_imported,
    mem_mb=4000,
    runtime=30,
    order=40,
)
