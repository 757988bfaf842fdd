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


FIGURES = (
    Figure(
        "task_relatedness",
        """Task relatedness: Pearson correlation between two tasks' mean negative
log-likelihood of the correct answer over every checkpoint of every run, with its p-value in each cell.""",
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
    points, comparison = point_relatedness(fit.tables["example_scores"], fit.settings)
    write(matrix.to_arrow(), fit.out("task_relatedness.parquet"))
    write(points.to_arrow(), fit.out("point_relatedness.parquet"))
    io.write_json(
        io.json_safe({"config": fit.spec, "point_relatedness": comparison.to_dicts()}), fit.out("point_relatedness.json")
    )
    plots.plot_task_relatedness(matrix, fit.figure("task_relatedness"))
    plots.plot_point_relatedness(points, comparison, fit.figure("point_relatedness"))
    for figure in FIGURES:
        write_caption(figure.caption, fit.figure(figure.name))
    return [f"task relatedness:\n{matrix}", f"point relatedness, O(n) vs O(n^2):\n{comparison}"]


def section(fits_dir, report_dir) -> str:
    from lmforecast.report import html

    return "".join(html.figure(report_dir / f"{f.name}.png") for f in FIGURES)


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
"""

FIT = Fit(
    name="relatedness",
    title="Task and point relatedness",
    settings=RelatednessSettings,
    schema=SCHEMA,
    tables=("task_scores", "example_scores"),
    outputs=("task_relatedness.parquet", "point_relatedness.parquet", "point_relatedness.json"),
    figures=lambda config: FIGURES,
    run=run,
    section=section,
    needs_training=True,
    check=lambda config: shots_errors(config, "relatedness"),
    mem_mb=4000,
    runtime=30,
    order=40,
)
