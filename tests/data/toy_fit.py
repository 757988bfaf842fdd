"""A toy fit for tests/test_registry.py: the whole of what adding a fit takes (README, "Adding a fit").

Copied into lmforecast/fits/ of a copy of the workflow; nothing else is edited.
"""

from dataclasses import dataclass

from lmforecast.fits.registry import Figure, Fit, Settings


@dataclass(frozen=True)
class ToySettings(Settings):
    scale: float


FIGURE = Figure("toy_tokens", "Planned tokens of every run, times fit.toy.scale.")


def run(fit):
    import matplotlib.pyplot as plt
    import polars as pl

    from lmforecast import io
    from lmforecast.report import plots
    from lmforecast.report.html import write_caption

    runs = fit.tables["runs"].select("run", (pl.col("tokens_planned") * fit.settings.scale).alias("scaled"))
    io.write_json({"config": fit.spec, "total": runs["scaled"].sum()}, fit.out("toy.json"))
    figure, ax = plt.subplots()
    ax.bar(runs["run"], runs["scaled"])
    plots.save_plot(figure, fit.figure(FIGURE.name), runs)
    write_caption(FIGURE.caption, fit.figure(FIGURE.name))
    return [f"toy: {runs.height} runs"]


def section(fits_dir, report_dir):
    from lmforecast.io import read_json
    from lmforecast.report import html

    return html.figure(report_dir / "toy_tokens.png") + f"<p>total {read_json(fits_dir / 'toy.json')['total']}</p>"


FIT = Fit(
    name="toy",
    title="Toy fit",
    settings=ToySettings,
    schema="""
type: object
additionalProperties: false
required: [scale]
properties:
  scale: {type: number, exclusiveMinimum: 0}
""",
    tables=("runs",),
    outputs=("toy.json",),
    figures=lambda config: (FIGURE,),
    run=run,
    section=section,
)
