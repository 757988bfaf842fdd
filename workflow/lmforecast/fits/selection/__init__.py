"""Benchmark prediction from a few selected points (the SELECT proposal, Algorithm 1: correlate,
SELECT a budget of examples, rank models on them), against Anchor Points and random subsets.
The selection methods are in points.py; this module registers the fit (kept free of heavy imports:
Snakemake reads it when it parses the workflow).
"""

import json
from dataclasses import dataclass

from lmforecast.fits.registry import Figure, Fit, Settings, shots_errors


@dataclass(frozen=True)
class SelectionSettings(Settings):
    metric: str
    shots: int
    budgets: tuple[int, ...]  # B: how many examples are selected
    source_fraction: float  # share of runs whose checkpoints select the points (when source_runs is not given)
    degree: int
    random_draws: int
    small_budget_max: int  # budgets up to this count as small in the verdict
    seed: int
    prompt: str | dict | None = None  # None: each task's first prompt
    source_runs: tuple[str, ...] | None = None


FIGURE = Figure(
    "selection",
    """Benchmark prediction from B selected examples (Algorithm 1), held-out models:
top, the mean absolute error of the estimated full-benchmark accuracy; bottom, Kendall tau between the
ranking by weighted log-likelihood on the B points and the true accuracy ranking. SELECT (O(n) point
relatedness clusters' medoids) against Anchor Points (K-medoids on confidence correlations) and random
subsets (mean and +-1 sd over the draws). Points are selected on the source runs only. The table below
says, per task, at which small budgets SELECT's error is below random's mean. SELECT clusters
per-example NLL trajectories, so it has little to work with where every checkpoint scores near chance
(the trajectories are mostly noise) or where the benchmark is small; where the models answer every
question alike (one label for all), any cluster-weighted selection is exact, a degenerate win.""",
)


def run(fit) -> list[str]:
    from lmforecast import io
    from lmforecast.fits.selection.points import evaluate_selection
    from lmforecast.report import plots
    from lmforecast.report.html import write_caption
    from lmforecast.tables import write

    rows, summary = evaluate_selection(fit.tables["example_scores"], fit.settings)
    write(rows.to_arrow(), fit.out("selection.parquet"))
    io.write_json(io.json_safe({"config": fit.spec, **summary}), fit.out("selection.json"))
    plots.plot_selection(rows, fit.figure("selection"))
    write_caption(FIGURE.caption, fit.figure("selection"))
    lines = []
    for task, s in summary["tasks"].items():
        skipped = f"; budgets {s['skipped_budgets']} skipped (>= {s['n_examples']} examples)" if s["skipped_budgets"] else ""
        lines.append(
            f"{task}: SELECT beats random at small budgets {s['small_budgets']}: "
            f"{s['select_beats_random_at_small_budgets']}{skipped}"
        )
    return lines


def select_vs_random(summary_path) -> list[dict]:
    """Per task: the benchmark's size, and at which small budgets SELECT's MAE is below random's mean."""
    rows = []
    for task, d in json.loads(summary_path.read_text())["tasks"].items():
        wins = [b for b in d["small_budgets"] if d["by_budget"][str(b)]["select_beats_random"]]
        rows.append(
            {
                "task": task,
                "examples": d["n_examples"],
                "small budgets": ", ".join(map(str, d["small_budgets"])),
                "SELECT beats random at": ", ".join(map(str, wins)) or "none",
                "at every small budget": "yes" if d["select_beats_random_at_small_budgets"] else "no",
            }
        )
    return rows


def section(fits_dir, report_dir) -> str:
    import polars as pl

    from lmforecast.report import html

    verdict = pl.DataFrame(select_vs_random(html.require(fits_dir / "selection.json", "selection summary")))
    return (
        html.figure(report_dir / "selection.png")
        + "<h3>Does SELECT beat random at small budgets? (results/fits/selection.json)</h3>"
        + html.table(verdict)
    )


def leaderboard_rows(fits_dir) -> list[dict]:
    """Held-out models' full-benchmark accuracy on a task from B selected points (MAE; lower is better)."""
    from lmforecast.report import html

    rows = []
    for r in html.read(fits_dir / "selection.parquet", "selection results").iter_rows(named=True):
        random = r["method"] == "random"
        spread = 1.96 * r["mae_std"] if random and r["mae_std"] == r["mae_std"] else None
        rows.append(
            {
                "question": "selection",
                "target": f"{r['task']}: accuracy of {r['n_target_models']} held-out models from B={r['budget']} points",
                "predictor": r["method"],
                "measure": "MAE",
                "value": r["mae"],
                "lo": max(r["mae"] - spread, 0.0) if spread is not None else None,
                "hi": r["mae"] + spread if spread is not None else None,
                "interval": (
                    f"mean +- 1.96 sd over {r['draws']} random draws" if random else "one deterministic selection: no interval"
                ),
                "n": r["n_target_models"],
                "better": "lower",
            }
        )
    return rows


def check(config: dict) -> list[str]:
    """Shots that were evaluated, and a source/target split that leaves held-out runs."""
    if "import" in config:
        return []
    selection, errors = config["fit"]["selection"], shots_errors(config, "selection")
    names = [r["name"] for r in config["runs"]] + [e["name"] for e in config.get("external", [])]  # external: runs too
    if len(names) < 2:
        errors.append("fit.selection: needs at least 2 runs (source and held-out target)")
    source = selection.get("source_runs") or []
    unknown = sorted(set(source) - set(names))
    if unknown:
        errors.append(f"fit.selection.source_runs: {unknown} are not names of runs")
    elif source and set(source) == set(names):
        errors.append("fit.selection.source_runs: lists every run, which leaves no held-out target run")
    return errors


SCHEMA = """
type: object
additionalProperties: false
required: [metric, shots, budgets, source_fraction, degree, random_draws, small_budget_max, seed]
properties:
  metric: {enum: [acc, acc_norm]}
  shots: {type: integer, minimum: 0}
  prompt: {$ref: "#/$defs/prompt_choice"}
  budgets: {type: array, minItems: 1, uniqueItems: true, items: {type: integer, minimum: 1}}
  source_runs: {type: [array, "null"], uniqueItems: true, items: {type: string}}
  source_fraction: {type: number, exclusiveMinimum: 0, exclusiveMaximum: 1}
  degree: {type: integer, minimum: 0}
  random_draws: {type: integer, minimum: 2}
  small_budget_max: {type: integer, minimum: 1}
  seed: {type: integer, minimum: 0}
"""

FIT = Fit(
    name="selection",
    title="Benchmark prediction from selected points",
    settings=SelectionSettings,
    schema=SCHEMA,
    tables=("example_scores",),
    outputs=("selection.parquet", "selection.json"),
    figures=lambda config: (FIGURE,),
    run=run,
    section=section,
    needs_training=True,
    check=check,
    leaderboard=leaderboard_rows,
    mem_mb=4000,
    runtime=30,
    order=50,
)
