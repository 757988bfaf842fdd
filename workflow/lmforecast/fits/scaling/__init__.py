"""Scaling chains (FLP, Chen et al. 2024; the OLMo ladder; Chinchilla; FLP-M), a flat null model and their ensemble,
back-tested per family.

Each predictor is fitted on a family's smaller runs and predicts the held-out runs' final task
scores from their compute (backtest.py); the chains' curves are in curves.py, chinchilla.py and
flpm.py, the rows they fit on in frames.py, the back-test's error summaries in evaluation.py. This module
registers the fit (kept free of heavy imports: Snakemake reads it when it parses the workflow).
"""

from dataclasses import dataclass, field

from lmforecast.fits.registry import Figure, Fit, Settings
from lmforecast.settings import ConfigError


@dataclass(frozen=True)
class LadderSettings(Settings):
    """The OLMo ladder chain's choices (Bhagia et al. 2024); defaults chosen by back-tests (docs/scaling-backtests.md)."""

    step1: str = "auto"  # compute: L(C) power law | params_tokens: L(N, D) = E + A/N^alpha + B/D^beta (the paper's)
    # | params_tokens_tied: the same with alpha = beta (Gadre et al. 2024's over-training law L(C, M))
    # | auto: params_tokens_tied where some size has two or more token budgets, compute otherwise
    feature: str = "task_loss"  # the intermediate: task_loss (bits per byte of the correct answer) | loss (pre-training)
    # step 2 also fits the point (feature 0, score 1): a perfect model is always right (the paper's) | auto: where the
    # feature is the task loss and the fitted points' score falls with it (predictors._resolved_anchor)
    anchor: bool | str = "auto"
    skip_fraction: float = 0.1  # step 2 skips each run's checkpoints up to this fraction of its steps
    moving_average: int = 1  # step 2's points: mean over this many consecutive checkpoints of a run (1: none)
    # step 2 by orthogonal distance regression: the feature is noisy too, its scale the robust scatter of step 1's
    # residuals, the score's the least-squares sigmoid's residual scatter
    errors_in_variables: bool = False
    # step 2's sigmoid in L - g (log M - m0), M = D/N the token multiple, 0 <= g <= 1: over-training as a second input
    token_multiple: bool = False
    # step 2's slope and rise shared by a task's families (recipes), fitted on all of them at once; each family
    # keeps its floor and midpoint (a recipe moves where a task rises, not how)
    shared_shape: bool = False

    def __post_init__(self):
        step2 = [k for k in ("errors_in_variables", "token_multiple", "shared_shape") if getattr(self, k)]
        if len(step2) > 1:
            raise ConfigError(
                f"fit.scaling.ladder: {' and '.join(step2)} are different fits of step 2; expected at most one true"
            )


@dataclass(frozen=True)
class PlannedRun(Settings):
    """A run not trained (yet), whose final scores are forecast by the fits of its family (fit.scaling.forecast): the
    question a ladder is trained to answer, e.g. a 7B model at 2T tokens from runs of 190M-1B."""

    name: str
    n_params: float
    tokens: float
    mixture: str
    objective: str = "clm"
    lr: float | None = None  # its family's peak learning rate (where fit.scaling.family_keys has lr)
    flops: float | None = None  # training compute, in the runs' convention (None: 6 n_params tokens, checked)


@dataclass(frozen=True)
class ScalingSettings(Settings):
    metric: str  # the score predicted: acc or acc_norm
    shots: int
    emerged_margin: float  # FLP's stage 2 fits checkpoints whose score exceeds chance by this much
    holdout: str | tuple[str, ...]  # largest_compute, or the held-out runs by name
    predictors: tuple[str, ...]
    bootstrap: int  # resamples of the training runs, for intervals and bootstrap standard errors
    prompt: str | dict | None = None  # None: each task's first prompt
    ladder: LadderSettings = field(default_factory=LadderSettings)
    # bootstrap: the refits' 2.5-97.5% range (the fitted curve's uncertainty) | score_scatter: each refit's prediction
    # plus a draw of the score fit's residual scatter | prediction (default; chosen by coverage inside the ladders,
    # docs/scaling-backtests.md): also a chain's intermediate scatter about its step 1 law, carried through the
    # score's fit (a new run misses both laws as the fitted runs do). The ensemble's interval is its own (ensemble.py).
    interval: str = "prediction"
    tasks: tuple[str, ...] | None = None  # the tasks predicted (None: every task with the metric)
    family_keys: tuple[str, ...] = ("mixture", "objective", "lr")  # runs sharing these form a family (drop lr: per-size lr)
    ensemble_members: tuple[str, ...] | None = None  # the predictors the ensemble combines (None: every other configured one)
    forecast: tuple[PlannedRun, ...] = ()  # runs not trained: each predictor's forecast from its family's fit


FIGURES = (
    Figure(
        "loss_vs_compute",
        """Stage 1 of FLP: pre-training loss (mean of the held-out domain losses) of every
checkpoint against its training compute; large dots are final checkpoints, lines the power law
L = E + A (C/C0)^-alpha fitted per family (Huber loss on log-residuals) to the final checkpoints of all
but the held-out run (star); x marks the loss the fit predicts for the held-out run.""",
    ),
    Figure(
        "score_vs_loss",
        """Stage 2 of FLP: task accuracy of every checkpoint against its pre-training loss,
one panel per task; crosses are FLP's predictions for each family's held-out run, with 95% intervals
(fit.scaling.interval; by default the predictions of bootstrap refits over the training runs, both stages
refitted, plus both stages' residual scatter), stars the actual score; dotted: chance.""",
    ),
    Figure(
        "predicted_vs_actual",
        """Back-test of every scaling predictor (direct compute to score, the flat null model, FLP,
Chinchilla L(N, D) chain, OLMo ladder sigmoid chain, FLP-M, and their ensemble weighted by a back-test
inside the ladder): the score each predicts for a family's
held-out run (fitted without it) against the actual score, with its 95% interval as a bar;
marker shape is the family; points on the dashed diagonal are exact. From
results/fits/scaling_predictions.parquet.""",
    ),
)


def run(fit) -> list[str]:
    import polars as pl
    import torch

    from lmforecast import io
    from lmforecast.fits.scaling import evaluation
    from lmforecast.fits.scaling.backtest import forecast
    from lmforecast.fits.scaling.frames import checkpoint_points, select_scores
    from lmforecast.report import plots
    from lmforecast.report.html import write_caption
    from lmforecast.tables import write

    torch.set_num_threads(1)  # FLP-M's network is tiny
    t, cfg = fit.tables, fit.settings
    params, preds, forecasts, report = forecast(t, cfg, workers=fit.threads)
    write(params.to_arrow(), fit.out("scaling_params.parquet"))
    write(preds.to_arrow(), fit.out("scaling_predictions.parquet"))
    write(forecasts.to_arrow(), fit.out("scaling_forecasts.parquet"))
    text = (
        "mean absolute and relative error and interval coverage per predictor; rel_error_lo, rel_error_hi and "
        "covered_lo, covered_hi: the mean relative error's and the coverage's 95% intervals, a bootstrap over the "
        "held-out runs and the tasks (both drawn, independently); "
        "floor_rel_error: the mean relative error of a forecaster exact in expectation, from the targets' sampling noise "
        "alone (sqrt(2/pi) score_actual_se / score_actual over the rows whose task has a known number of examples; null: "
        "none has)"
    )
    # every row and column, not polars' elided preview, and no wrapped cells
    with pl.Config(tbl_rows=-1, tbl_cols=-1, tbl_width_chars=400):
        report += ["", f"{text}:\n{evaluation.summary(preds)}"]
        versus = (
            "each predictor's mean relative error minus the lowest one's (among the predictors of the most pairs), over the "
            "pairs both predicted, with its 95% interval from the same draws (an interval that holds 0 does not tell the "
            "two apart)"
        )
        report += ["", f"{versus}:\n{evaluation.versus_best(preds)}"]
        for by in ("run", "task"):
            report += ["", f"mean relative error (intervals covering) per held-out {by}:\n{evaluation.breakdown(preds, by)}"]
        ranked, reliability = evaluation.ranking_backtest(preds)
        if ranked.height:
            report += ["", f"{RANKING_BACKTEST_TEXT}:\n{ranked}", f"{RELIABILITY_TEXT}:\n{reliability}"]
        if forecasts.height:
            report += ["", f"{FORECAST_TEXT}:\n{evaluation.forecast_table(forecasts)}"]
            ranking = evaluation.forecast_ranking(forecasts)
            if ranking.height:
                report += ["", f"{RANKING_TEXT}:\n{ranking}"]
    io.write_text("\n".join(report) + "\n", fit.out("scaling_report.txt"))
    everything = {"config": fit.spec, "predictions": preds.to_dicts(), "params": params.to_dicts()}
    io.write_json(everything | {"forecasts": forecasts.to_dicts()}, fit.out("scaling.json"))

    # the prompt each task's score is read with (a name, {task: name}, or each task's first), said in the captions
    selected = select_scores(t["task_scores"], cfg)
    used = selected.unique(subset="task", maintain_order=True)
    settings = (
        f"Score: {cfg.metric}, {cfg.shots}-shot; prompt per task: "
        + ", ".join(f"{task} {prompt}" for task, prompt in zip(used["task"], used["prompt"]))
        + "."
    )
    points = checkpoint_points(t["runs"], t["checkpoints"], t["domain_losses"], cfg.family_keys)
    points = points.filter(pl.col("loss").is_not_null() & (pl.col("flops") > 0))  # on log axes
    if preds.height:
        if points.height:
            plots.plot_loss_vs_compute(points, params, preds, fit.figure("loss_vs_compute"))
            plots.plot_score_vs_loss(selected.join(points, on=["run", "step"]), preds, fit.figure("score_vs_loss"))
        else:  # task scores alone (an lm-eval import): the figures through the loss have nothing to draw
            for name in ("loss_vs_compute", "score_vs_loss"):
                plots.empty_plot(fit.figure(name), NO_LOSS, preds)
        plots.plot_predicted_vs_actual(preds, fit.figure("predicted_vs_actual"))
    else:
        for figure in FIGURES:
            plots.empty_plot(fit.figure(figure.name), NOT_FITTED, preds)
    for figure in FIGURES:
        write_caption(figure.caption + ("" if figure.name == "loss_vs_compute" else f" {settings}"), fit.figure(figure.name))
    return report


FORECAST_TEXT = (
    "forecasts of the runs not trained (fit.scaling.forecast; results/fits/scaling_forecasts.parquet): each "
    "predictor's final score with its 95% interval, from the fits the back-test above measured"
)
RANKING_TEXT = (
    "where planned runs of several families share a scale (n_params, tokens): which one each predictor's forecast puts "
    "first per task, and p_first, the share of the bootstrap resamples (paired across families by index) whose draws "
    "put it first"
)
RANKING_BACKTEST_TEXT = (
    "Where held-out runs of several families share a scale (n_params, tokens): how well each predictor ranked them per "
    "task; point_right: the share of (scale, task) cells whose point forecasts put the actual winner first (chance: a "
    "guess's), p_winner: the actual winner's mean p_first, brier: the mean Brier score of p_first (brier_chance: a "
    "uniform p_first's; lower is better); an actual winner within its sampling noise of the next is itself a guess"
)
RELIABILITY_TEXT = (
    "The reliability of p_first over those cells: the runs binned by p_first, each bin's mean p_first beside the share of "
    "its runs that won (equal where p_first is calibrated)"
)
NOT_FITTED = "no scaling predictor could be fitted (see results/fits/scaling_report.txt)."
NO_LOSS = "no pre-training loss in the tables (task scores only): nothing to draw against it."


def section(fits_dir, report_dir) -> str:
    from lmforecast.fits.scaling import evaluation
    from lmforecast.report import html

    preds = html.read(fits_dir / "scaling_predictions.parquet", "scaling back-test")
    params = html.read(fits_dir / "scaling_params.parquet", "scaling parameters")
    forecasts = html.read(fits_dir / "scaling_forecasts.parquet", "scaling forecasts")
    if not preds.height:
        return html.note(NOT_FITTED)
    ranking_note = ""
    ranked, reliability = evaluation.ranking_backtest(preds)
    if ranked.height:
        ranking_note = (
            f"<p>{RANKING_BACKTEST_TEXT}.</p>" + html.table(ranked) + f"<p>{RELIABILITY_TEXT}.</p>" + html.table(reliability)
        )
    planned = ""
    if forecasts.height:
        planned = (
            "<p>Forecasts of the runs not trained (<code>fit.scaling.forecast</code>): each predictor's final score with "
            "its 95% interval, from the fits the back-test above measured.</p>" + html.table(evaluation.forecast_table(forecasts))
        )
        ranking = evaluation.forecast_ranking(forecasts)
        if ranking.height:
            planned += (
                "<p>Where planned runs of several families share a scale: which one each predictor's forecast puts first "
                "per task, and <code>p_first</code>, the share of the bootstrap resamples (paired across families) whose "
                "draws put it first.</p>" + html.table(ranking)
            )
    return (
        "<p>Each predictor's mean errors over the held-out runs and tasks (the relative one with its 95% interval over "
        "other targets and tasks: <code>rel_error_lo</code>, <code>rel_error_hi</code>), its intervals' coverage (with its "
        "<code>covered_lo</code>, <code>covered_hi</code>), and "
        "<code>floor_rel_error</code>: the relative error that the held-out scores' own sampling error alone gives a "
        "forecaster exact in expectation (null where the tasks' sizes are unknown).</p>"
        + html.table(evaluation.summary(preds))
        + "<p>Against the most accurate (the lowest mean relative error): each predictor's mean relative error minus "
        "its, over the pairs both predicted, with its 95% interval (paired, the same draws): an interval that holds 0 "
        "does not tell the two apart.</p>"
        + html.table(evaluation.versus_best(preds))
        + "<p>Per held-out run: each predictor's mean relative error over the tasks (its intervals covering).</p>"
        + html.table(evaluation.breakdown(preds, "run"))
        + ranking_note
        + planned
        + "".join(html.figure(report_dir / f"{f.name}.png") for f in FIGURES)
        + "<details><summary>Back-test table (results/fits/scaling_predictions.parquet)</summary>"
        + html.table(preds.drop("score_draws"), sortable=True)
        + "</details><details><summary>Fitted parameters (stderr: "
        "lmfit's, from the Jacobian; stderr_boot: bootstrap over runs)</summary>"
        + html.table(params, sortable=True)
        + "</details>"
    )


def _error_range(actual: float, lo: float, hi: float) -> tuple[float, float]:
    """Range of |actual - p| over predictions p in [lo, hi]: the back-test error the prediction interval allows."""
    far = max(abs(actual - lo), abs(actual - hi))
    return (0.0, far) if lo <= actual <= hi else (min(abs(actual - lo), abs(actual - hi)), far)


def leaderboard_rows(fits_dir) -> list[dict]:
    """A held-out run's final score on a task, from compute (absolute error; lower is better)."""
    from lmforecast.report import html

    rows = []
    for r in html.read(fits_dir / "scaling_predictions.parquet", "scaling back-test").iter_rows(named=True):
        lo, hi = _error_range(r["score_actual"], r["score_lo"], r["score_hi"])
        rows.append(
            {
                "question": "scaling",
                "target": f"{r['task']}: final score of {r['run']} (held out)",
                "predictor": r["predictor"],
                "measure": "abs. error",
                "value": r["abs_error"],
                "lo": lo,
                "hi": hi,
                "interval": f"error allowed by the 95% bootstrap prediction interval ({r['n_boot']} refits)"
                + ("" if r["covered"] else "; interval misses the actual score"),
                "n": r["n_fit_runs"],
                "better": "lower",
            }
        )
    return rows


def check(config: dict) -> list[str]:
    """Held-out runs named by fit.scaling.holdout are runs of the sweep: trained (`runs`) or imported
    (`import.runs`, in analysis-only mode)."""
    scaling = config["fit"]["scaling"]
    members = scaling.get("ensemble_members") or []
    errors = [
        f"fit.scaling.ensemble_members[{i}]: {m!r} is not in fit.scaling.predictors; expected one of {scaling['predictors']}"
        for i, m in enumerate(members)
        if m not in scaling["predictors"]
    ]
    imported = "import" in config
    runs = config["import"].get("runs", []) if imported else config["runs"] + config.get("external", [])
    names = {r["name"] for r in runs}
    where = "import.runs" if imported else "runs or external"
    mixtures = sorted({r["mixture"] for r in runs if r.get("mixture") is not None})
    planned = [p["name"] for p in scaling.get("forecast", [])]
    for i, p in enumerate(scaling.get("forecast", [])):
        if p["name"] in names or planned.index(p["name"]) < i:
            errors.append(f"fit.scaling.forecast[{i}]: name {p['name']!r} is taken; expected the new name of a run not trained")
        if mixtures and p["mixture"] not in mixtures:
            errors.append(f"fit.scaling.forecast[{i}]: mixture {p['mixture']!r} has no runs; expected one of {mixtures}")
        if not imported and p.get("flops") is None:  # known only after training otherwise: the fit would stop there
            errors.append(
                f"fit.scaling.forecast[{i}]: no flops; expected the planned run's training compute, counted as a trained"
                " run's (train/model.py flops_per_token: 6 (N + head) + 12 L d T per token, not 6 N)"
            )
    holdout = scaling["holdout"]
    if not isinstance(holdout, list):
        return errors
    return errors + [
        f"fit.scaling.holdout[{i}]: unknown run {name!r}; expected a name from {where}"
        for i, name in enumerate(holdout)
        if name not in names
    ]


SCHEMA = """
type: object
additionalProperties: false
required: [metric, shots, emerged_margin, holdout, predictors, bootstrap]
properties:
  metric: {enum: [acc, acc_norm]}
  shots: {type: integer, minimum: 0}
  prompt: {$ref: "#/$defs/prompt_choice"}
  emerged_margin: {type: number, minimum: 0, maximum: 1}
  holdout:
    description: "'largest_compute' or a non-empty list of run names"
    oneOf:
      - {enum: [largest_compute]}
      - {type: array, minItems: 1, uniqueItems: true, items: {type: string}}
  predictors:
    type: array
    minItems: 1
    uniqueItems: true
    items: {enum: [direct, flat, flp, chinchilla, ladder, flpm, ensemble]}
  bootstrap: {type: integer, minimum: 0, description: resamples of the training runs for intervals}
  interval:
    enum: [bootstrap, score_scatter, prediction]
    description: "bootstrap: the refits' range; score_scatter: plus the score fit's residual scatter; prediction: plus a chain's step 1 scatter carried through step 2"
  tasks: {type: [array, "null"], minItems: 1, uniqueItems: true, items: {type: string}, description: "tasks predicted (null: all)"}
  family_keys:
    type: array
    minItems: 1
    uniqueItems: true
    items: {enum: [mixture, objective, lr]}
    description: "runs sharing these form a family; leave lr out where a ladder tunes it per size"
  forecast:
    type: array
    uniqueItems: true
    description: "runs not trained: each predictor forecasts their final scores from their family's fit"
    items:
      type: object
      additionalProperties: false
      required: [name, n_params, tokens, mixture]
      properties:
        name: {type: string, minLength: 1}
        n_params: {type: number, exclusiveMinimum: 0}
        tokens: {type: number, exclusiveMinimum: 0, description: "training tokens at the run's end"}
        mixture: {type: string, description: "the runs' mixture of its family"}
        objective: {type: string}
        lr: {type: [number, "null"], description: "its family's peak learning rate, where fit.scaling.family_keys has lr"}
        flops: {type: [number, "null"], exclusiveMinimum: 0, description: "training compute in the runs' convention (null: 6 N D)"}
  ensemble_members:
    type: [array, "null"]
    minItems: 1
    uniqueItems: true
    items: {enum: [direct, flat, flp, chinchilla, ladder, flpm]}
    description: "the predictors the ensemble combines, each also in predictors (null: every other configured one)"
  ladder:
    type: object
    additionalProperties: false
    description: the OLMo ladder chain's choices (predictor ladder)
    properties:
      step1:
        enum: [auto, compute, params_tokens, params_tokens_tied]
        description: "task loss from compute C, or from (N, D); params_tokens_tied: alpha = beta (Gadre et al.); auto: tied (N, D) where a size has two token budgets, else C"
      feature: {enum: [task_loss, loss], description: "task bits per byte of the correct answer, or pre-training loss"}
      anchor:
        enum: [auto, true, false]
        description: "step 2 also fits (feature 0, score 1); auto: where the feature is the task loss and the score falls with it"
      skip_fraction: {type: number, minimum: 0, maximum: 1}
      moving_average: {type: integer, minimum: 1}
      errors_in_variables:
        type: boolean
        description: "step 2 by orthogonal distance regression, the feature's noise from step 1's residuals"
      token_multiple:
        type: boolean
        description: "step 2's sigmoid in the effective loss L - g (log M - mean log M), M = D/N tokens per parameter"
      shared_shape:
        type: boolean
        description: "step 2's slope and rise shared by a task's families, fitted on all at once; floor and midpoint per family"
"""

FIT = Fit(
    name="scaling",
    title="Scaling fits",
    settings=ScalingSettings,
    schema=SCHEMA,
    tables=("runs", "checkpoints", "domain_losses", "task_scores"),
    outputs=(
        "scaling_params.parquet",
        "scaling_predictions.parquet",
        "scaling_forecasts.parquet",
        "scaling_report.txt",
        "scaling.json",
    ),
    figures=lambda config: FIGURES,
    run=run,
    section=section,
    # one process per (family, predictor) fit, up to the cores given: the other fits are short, so
    # this one job is the workflow's tail
    threads=2,
    check=check,
    leaderboard=leaderboard_rows,
    runtime=60,
    order=10,
)
