"""Zero-shot vs fine-tuned accuracy (the SELECT proposal's objective 1): does a checkpoint's zero-shot
score say how it will score after SFT? Correlations in correlations.py; this module registers the
fit (kept free of heavy imports: Snakemake reads it when it parses the workflow).
"""

from dataclasses import dataclass

from lmforecast.fits.registry import Figure, Fit, Settings, shots_errors


@dataclass(frozen=True)
class TransferSettings(Settings):
    metric: str  # acc or acc_norm, zero-shot and after SFT
    shots: int


CAPTION = """Zero-shot accuracy of a checkpoint against its accuracy after SFT on one task, one panel per prompt,
one colour per SFT method and data (single-task or multi-task); a line joins one run's fine-tuned
checkpoints. The legend gives Pearson r (and its p-value) across runs' last fine-tuned checkpoints
(results/fits/transfer.parquet)."""


def figures(config: dict) -> tuple[Figure, ...]:
    from lmforecast.measure.tasks import resolve_task  # sft.tasks are task references: a figure per task name

    return tuple(Figure(f"transfer_{resolve_task(task).name}", CAPTION) for task in config["sft"]["tasks"])


def run(fit) -> list[str]:
    from lmforecast import io
    from lmforecast.fits.transfer.correlations import transfer_correlations
    from lmforecast.report import plots
    from lmforecast.report.html import write_caption
    from lmforecast.tables import write

    corr, pairs = transfer_correlations(fit.tables["task_scores"], fit.tables["sft_scores"], fit.settings)
    write(corr.to_arrow(), fit.out("transfer.parquet"))
    for task in sorted(pairs["task"].unique()):
        plots.plot_transfer(pairs, corr, task, fit.figure(f"transfer_{task}"))
        write_caption(CAPTION, fit.figure(f"transfer_{task}"))
    io.write_json(io.json_safe({"config": fit.spec, "correlations": corr.to_dicts()}), fit.out("transfer.json"))
    return [str(corr.filter(corr["scope"] == "across_runs"))]


def section(fits_dir, report_dir) -> str:
    import polars as pl

    from lmforecast.report import html

    corr = html.read(fits_dir / "transfer.parquet", "transfer correlations")
    across = corr.filter(pl.col("scope") == "across_runs").drop("scope", "run")
    return (
        "".join(html.figure(report_dir / f"transfer_{t}.png") for t in sorted(corr["task"].unique()))
        + "<h3>Correlations across runs (results/fits/transfer.parquet)</h3>"
        + html.table(across, sortable=True)
    )


SCHEMA = """
type: object
additionalProperties: false
required: [metric, shots]
properties:
  metric: {enum: [acc, acc_norm]}
  shots: {type: integer, minimum: 0}
"""

FIT = Fit(
    name="transfer",
    title="Zero-shot vs fine-tuned",
    settings=TransferSettings,
    schema=SCHEMA,
    tables=("task_scores", "sft_scores"),
    outputs=("transfer.parquet", "transfer.json"),
    figures=figures,
    run=run,
    section=section,
    needs_training=True,
    check=lambda config: shots_errors(config, "transfer"),
    order=30,
)
