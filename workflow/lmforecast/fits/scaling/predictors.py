"""The downstream-score predictors that the back-test compares, all on the same data.

Each predictor is fitted on the checkpoints of a family's training runs (`train`, rows of
flp.checkpoint_frame) and predicts the score of the held-out runs' final checkpoints
(`held`) from what is known before training them: compute, parameters and tokens.

- direct: score against log10 C on final checkpoints (the baseline the critique of FLP
  prefers, arXiv 2512.08894), the line on the logit: score = 1 / (1 + exp(-(w0 + w1 log10 C))),
  so that an accuracy stays in [0, 1];
- flp: C -> pre-training loss (power law, final checkpoints) -> score (line, emerged
  checkpoints: score above chance + margin) (FLP, Chen et al. 2024);
- chinchilla: (N, D) -> loss by L = E + A/N^alpha + B/D^beta (Epoch's protocol, on every
  checkpoint: a family has too few runs for five parameters on final ones) -> FLP's line;
- ladder: C -> task loss (bits per byte of the correct answer; power law per task) ->
  score (sigmoid on checkpoints past the first 10% of their run) (OLMo ladder);
- flpm: C -> each domain's loss (power law each) -> score (two-layer network on every
  training checkpoint) (FLP-M, Chen et al. 2024).

A predictor returns a Prediction; `warm` carries its fitted parameters so that bootstrap
refits start from them (one start instead of a grid).
"""

import math
from dataclasses import dataclass, field

import lmfit
import numpy as np
import polars as pl
from scipy.special import expit, logit
from scipy.stats import kendalltau

from lmforecast.fits.scaling import chinchilla, flpm
from lmforecast.fits.scaling.curves import (
    SHARED_SHAPE,
    FitError,
    _fit,
    fit_constant,
    fit_linear,
    fit_power_law,
    fit_sigmoid,
    fit_sigmoid_multiple,
    fit_sigmoid_odr,
    fit_sigmoid_shared,
    residual_rms,
    robust_scale,
    start_of,
    stderr_note,
)
from lmforecast.fits.scaling.frames import domains_of


@dataclass
class Prediction:
    scores: dict  # task -> predicted score per held row
    loss: np.ndarray | None = None  # predicted pre-training loss per held row, where the chain has one
    features: dict = field(default_factory=dict)  # task -> (frame column, predicted value per held row): its intermediate
    params: list = field(default_factory=list)  # rows: stage, task, param, value, stderr, n_points
    warm: dict = field(default_factory=dict)
    skipped: dict = field(default_factory=dict)  # task -> why it was not predicted
    notes: list = field(default_factory=list)  # choices the fit made on the data (lines of the report)
    scatter: dict = field(default_factory=dict)  # task -> residual standard deviation of the score's fit
    # task -> per held row: a chain's intermediate scatter around its step 1 law, carried through the score's fit
    propagated: dict = field(default_factory=dict)

    def add_scatter(self, task, score_rms: float, n_points: int, feature_rms=None, propagated=None):
        """The residual scales a prediction interval carries (`interval: prediction`), kept and reported as
        `interval` rows: the score fit's, and a chain's intermediate's about step 1's law (with what it moves the
        score by at each held row)."""
        self.scatter[task] = score_rms
        if propagated is not None:
            self.propagated[task] = propagated
        scales = {"score_rms": score_rms} | ({} if feature_rms is None else {"feature_rms": feature_rms})
        note = "a residual scale (how far a new run misses the fit), not fitted; the prediction interval carries it"
        self.params += [
            {"stage": "interval", "task": task, "param": k, "value": float(v), "stderr": math.nan}
            | {"n_points": n_points, "stderr_note": note}
            for k, v in scales.items()
        ]


def _propagate(curve, feature_pred, sx: float) -> np.ndarray:
    """The score's spread from a feature that misses step 1's law by +-sx (its residual scale, residual_rms): half
    the curve's rise over pred +- sx at each held row (a secant, not a tangent: the sigmoid bends over such spans)."""
    return np.abs(curve(feature_pred + sx) - curve(feature_pred - sx)) / 2


def _scatter(result, n_extra: int = 0) -> float:
    """The residual standard deviation of the last stage's fit (an anchor point, `n_extra`, left out)."""
    r = np.asarray(result.residual, float)[: result.ndata - n_extra]
    return float(np.sqrt(np.sum(r**2) / max(1, len(r) - result.nvarys)))


def _rows(result, stage, task=None, extra=None):
    rows = [
        {
            "stage": stage,
            "task": task,
            "param": n,
            "value": float(p.value),
            "stderr": float(p.stderr) if p.stderr is not None and _fitted(p) else math.nan,
            "n_points": int(result.ndata),
            "stderr_note": stderr_note(result, n),
        }
        for n, p in result.params.items()
    ]
    return rows + [
        {
            "stage": stage,
            "task": task,
            "param": n,
            "value": float(v),
            "stderr": math.nan,
            "n_points": int(result.ndata),
            "stderr_note": "a constant of the fit, not fitted",
        }
        for n, v in (extra or {}).items()
    ]


def _fitted(p) -> bool:
    """An lmfit parameter that the fit varied or computed (an expression), not one held fixed."""
    return p.vary or p.expr is not None


def _odr_rows(fit, stage, task):
    """The rows of an OdrFit: its parameters, and the noise scales it was given (estimated before it)."""
    why = "orthogonal distance regression: no Jacobian standard error computed; see stderr_boot"
    scales = "a noise scale estimated before the fit (sx: step 1's residuals; sy: least squares' residual scatter)"
    return [
        {"stage": stage, "task": task, "param": n, "value": v, "stderr": math.nan, "n_points": fit.ndata, "stderr_note": note}
        for n, v, note in [(n, v, why) for n, v in fit.values.items()] + [("sx", fit.sx, scales), ("sy", fit.sy, scales)]
    ]


def _chinchilla_rows(fit, stage, task):
    """E, A, B, alpha, beta and log_A, log_B: A and B trade off against alpha and beta, so that their bootstrap
    draws spread over orders of magnitude (A's standard error was 9.6e7 on a ladder); their spread is reported
    in log space, where the fit is done (log L_hat = logsumexp(log_A - alpha log N, ...)), and not for A and B."""
    why = "no Jacobian standard error: L(N, D) is fitted by L-BFGS-B on a Huber loss; see stderr_boot"
    rows = [
        {"stage": stage, "task": task, "param": k, "value": v, "stderr": math.nan, "n_points": fit.n_points, "stderr_note": why}
        for k, v in fit.params.items()
    ]
    for row in rows:
        if row["param"] in ("A", "B"):
            row["stderr_note"] = (
                f"no standard error of {row['param']}: its refits span orders of magnitude; see log_{row['param']}"
            )
            row["no_boot"] = True  # backtest leaves stderr_boot NaN
    return rows + [
        {"stage": stage, "task": task, "param": f"log_{k}", "value": math.log(fit.params[k]), "stderr": math.nan}
        | {"n_points": fit.n_points, "stderr_note": why}
        for k in ("A", "B")
    ]


def _finals(train):
    return train.filter(pl.col("is_final"))


def _col(df, name):
    return df[name].to_numpy().astype(float)


def _known(df, *columns):
    """Rows where every named column has a value (imported tables may lack a task at some checkpoints)."""
    return df.drop_nulls(list(columns)).filter(pl.all_horizontal([pl.col(c).is_not_nan() for c in columns]))


def _stage1(finals, held, column, warm, key):
    """Power law of `column` against compute on final checkpoints; its prediction at the held compute, and the
    fitted points' residuals about it."""
    result, c0 = fit_power_law(_col(finals, "flops"), _col(finals, column), start=warm.get(key))
    pred = np.exp(result.eval(c=_col(held, "flops") / c0))
    residual = _col(finals, column) - np.exp(result.eval(c=_col(finals, "flops") / c0))
    return result, c0, pred, residual


def _emerged(train, task, cfg):
    return _known(train, f"score:{task}", f"chance:{task}").filter(
        pl.col(f"score:{task}") > pl.col(f"chance:{task}") + cfg.emerged_margin
    )


def _per_task(tasks, out: Prediction, fit_one):
    """fit_one(task) for each task; a task that cannot be fitted is noted, the others go on."""
    for task in tasks:
        try:
            fit_one(task)
        except FitError as e:
            out.skipped[task] = str(e)


def logit_line(x, intercept, slope):
    return expit(intercept + slope * x)


def fit_logit_line(x, y):
    """score = expit(intercept + slope x), least squares on the score: a line in logit space, so an
    accuracy (acc, acc_norm: the metrics fit_scaling takes) stays in [0, 1] (the plain line, on scores
    near 1, extrapolated above 1: Pythia's sciq, 1.003). Started from the line through the scores'
    logits, clipped off 0 and 1."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < 3:
        raise FitError(f"a line needs at least 3 points, got {len(x)}")
    z, dx = logit(np.clip(y, 0.01, 0.99)), x - x.mean()
    # by hand, not np.polyfit: a bootstrap draw of one run repeated has one x, where polyfit warns
    slope = float(dx @ (z - z.mean()) / (dx @ dx)) if dx @ dx > 0 else 0.0
    intercept = float(z.mean() - slope * x.mean())
    model = lmfit.Model(logit_line)
    return _fit(model, y, model.make_params(intercept=intercept, slope=slope), x=x)


def direct(train, held, tasks, cfg, warm):
    out = Prediction(scores={})

    def fit_one(task):
        finals = _known(_finals(train), f"score:{task}")
        fit = fit_logit_line(np.log10(_col(finals, "flops")), _col(finals, f"score:{task}"))
        out.scores[task] = fit.eval(x=np.log10(_col(held, "flops")))
        out.add_scatter(task, _scatter(fit), fit.ndata)
        out.params += _rows(fit, "direct", task)

    _per_task(tasks, out, fit_one)
    return out


def flat(train, held, tasks, cfg, warm):
    """The score flat in scale: the fitted runs' mean final score. A null model for a task that does not scale
    (at chance, or moving with noise or against the others); beside the chains, the ensemble weighs it by its
    back-test inside the ladder like any member, so that it takes the weight only where the trends miss."""
    out = Prediction(scores={})

    def fit_one(task):
        fit = fit_constant(_col(_known(_finals(train), f"score:{task}"), f"score:{task}"))
        out.scores[task] = fit.eval(x=np.zeros(held.height))
        out.add_scatter(task, _scatter(fit), fit.ndata)
        out.params += _rows(fit, "flat", task)

    _per_task(tasks, out, fit_one)
    return out


def _line_from_loss(train, loss_pred, sx, tasks, cfg, out: Prediction):
    def fit_one(task):
        pts = _emerged(train, task, cfg)
        if pts.height < 3:
            raise FitError(f"{pts.height} emerged checkpoints (score > chance + {cfg.emerged_margin}), need 3")
        fit = fit_linear(_col(pts, "loss"), _col(pts, f"score:{task}"))
        out.scores[task] = fit.eval(x=loss_pred)
        out.add_scatter(task, _scatter(fit), fit.ndata, sx, _propagate(lambda v: fit.eval(x=v), loss_pred, sx))
        out.params += _rows(fit, "score", task)

    _per_task(tasks, out, fit_one)


def _with_loss(train):
    """The checkpoints with a pre-training loss; none (an import of task scores alone) is an error."""
    known = _known(train, "loss")
    if not known.height:
        raise FitError("no pre-training loss (domain_losses) at any checkpoint")
    return known


def flp(train, held, tasks, cfg, warm):
    train = _with_loss(train)
    s1, c0, loss_pred, residual = _stage1(_finals(train), held, "loss", warm, "loss")
    out = Prediction(scores={}, loss=loss_pred, params=_rows(s1, "loss", extra={"C0": c0}), warm={"loss": start_of(s1)})
    _line_from_loss(train, loss_pred, residual_rms(residual, s1.nvarys), tasks, cfg, out)
    return out


def _law_at(p, df):
    """L(N, D) = E + A/N^alpha + B/D^beta (fit_chinchilla's parameters `p`) at the rows of `df`."""
    return p["E"] + p["A"] / _col(df, "n_params") ** p["alpha"] + p["B"] / _col(df, "tokens") ** p["beta"]


def chinchilla_chain(train, held, tasks, cfg, warm):
    # L(N, D) has no value at D = 0: an untrained checkpoint (Pythia's step 0) is left out of step 1
    train = _with_loss(train).filter(pl.col("tokens") > 0)
    fit = chinchilla.fit_chinchilla(
        _col(train, "n_params"), _col(train, "tokens"), _col(train, "loss"), n_bootstrap=0, n_starts=10, start=warm.get("loss")
    )
    p = fit.params
    # a new run misses the law as the fitted runs' final checkpoints do (the law, fitted on every checkpoint, has
    # degrees of freedom to spare: no correction)
    finals = _finals(train)
    out = Prediction(scores={}, loss=_law_at(p, held), params=_chinchilla_rows(fit, "loss", None), warm={"loss": p})
    _line_from_loss(train, out.loss, residual_rms(_col(finals, "loss") - _law_at(p, finals), 0), tasks, cfg, out)
    return out


def _smoothed(train, columns, window):
    """Each run's rows with `columns` replaced by their mean over `window` consecutive checkpoints (the ladder
    smooths step 2's points: single checkpoints' accuracies are noisy)."""
    if window <= 1:
        return train
    return train.sort("run", "step").with_columns(pl.col(c).rolling_mean(window, min_samples=1).over("run") for c in columns)


def _resolved_step1(pts, step1):
    """`auto`: L(N, D) with alpha = beta where the final checkpoints identify it (some size trained for two or more
    token counts: Pythia's one budget per size leaves D/N tied to N), a power law in C otherwise. Chosen by the
    back-tests in docs/scaling-backtests.md: with several budgets per size, (N, D) beat C inside mlfoundations'
    ladder and on the default sweep, and the tied law's four parameters beat the paper's five for `ladder` on both."""
    if step1 != "auto":
        return step1
    budgets = pts.group_by("n_params").agg(pl.col("tokens").n_unique())["tokens"]
    return "params_tokens_tied" if pts.height >= 4 and budgets.max() >= 2 else "compute"


def _ladder_step1(finals, held, column, lc, warm, stage, task, notes):
    """The feature at the held-out runs: a power law in C, or L(N, D) (the paper's step 1; alpha = beta with
    params_tokens_tied), on final checkpoints. Returns (prediction, parameter rows, warm start, step 1 used, the
    fitted runs' residuals about the law and the law's number of parameters)."""
    pts = _known(finals, column)
    # a refit (bootstrap, inner back-test) keeps the full fit's choice: a resample may drop a size's second budget
    step1 = warm.get(f"step1:{column}") or _resolved_step1(pts, lc.step1)
    if lc.step1 == "auto" and f"step1:{column}" not in warm:
        budgets = "a size has two or more token budgets" if step1 != "compute" else "one token budget per size"
        notes.append(f"step 1 ({stage}) on {'(N, D), alpha = beta' if step1 != 'compute' else 'C'}: auto, {budgets}")
    if step1 == "compute":
        s1, c0, pred, residual = _stage1(pts, held, column, warm, column)
        return pred, _rows(s1, stage, task, extra={"C0": c0}), start_of(s1), step1, (residual, s1.nvarys)
    tied = step1 == "params_tokens_tied"  # alpha = beta: Gadre et al.'s over-training law, 4 parameters
    if pts.height < 5 - tied:
        raise FitError(
            f"step 1 on (N, D) has {5 - tied} parameters and needs at least {5 - tied} final checkpoints, got {pts.height}"
        )
    fit = chinchilla.fit_chinchilla(
        _col(pts, "n_params"),
        _col(pts, "tokens"),
        _col(pts, column),
        n_bootstrap=0,
        n_starts=10,
        start=warm.get(column),
        tied=tied,
    )
    p = fit.params
    return _law_at(p, held), _chinchilla_rows(fit, stage, task), p, step1, (_col(pts, column) - _law_at(p, pts), 5 - tied)


def _resolved_anchor(x, y, anchor, feature: str, task: str, warm: dict, notes: list) -> bool:
    """`auto`: the anchor (feature 0 -> score 1) where the feature is the task's own loss and the fitted points'
    score falls as it rises (Kendall's tau, one-sided p < 0.05). A task loss of 0 is a model always right, so the
    anchor tells step 2 where the curve ends beyond the small models' range (the OLMo ladder's; without it the
    sigmoid's ceiling is set by their range); a score at chance in every fitted run shows no rise, and anchored
    it became a step just past the points (the default sweep's var_track: 0.23 predicted 0.996). The pre-training
    loss never reaches 0 (the text's entropy): no anchor."""
    if anchor != "auto":
        return anchor
    if f"anchor:{task}" in warm:  # a refit keeps the full fit's choice
        return warm[f"anchor:{task}"]
    if feature == "loss":
        return False
    tau = kendalltau(x, y, alternative="less") if len(x) >= 3 else None
    anchored = bool(tau is not None and tau.pvalue < 0.05)
    trend = f"Kendall tau {tau.statistic:.2f}, p {tau.pvalue:.2g}" if tau is not None else "too few points"
    notes.append(f"step 2 ({task}) {'anchored' if anchored else 'not anchored'}: auto, the score against the task loss: {trend}")
    return anchored


_LOG_MULTIPLE = (pl.col("tokens") / pl.col("n_params")).log().alias("log_multiple")  # M = D/N, tokens per parameter


def _feature_column(lc, task: str) -> str:
    return f"bpb:{task}" if lc.feature == "task_loss" else "loss"


def step2_points(train, task, lc, warm: dict, notes: list):
    """The ladder's step 2 points of one task: each run's checkpoints past `skip_fraction`, smoothed over
    `moving_average`, with log M where `token_multiple`, and the anchor where it applies (_resolved_anchor).
    Returns (the points' rows, feature x, score y, anchored)."""
    column = _feature_column(lc, task)
    known, columns = _known(train, column, f"score:{task}"), [column, f"score:{task}"]
    if lc.token_multiple:  # log M = log(D/N) per checkpoint; an untrained one (D = 0) has none
        known, columns = known.filter(pl.col("tokens") > 0).with_columns(_LOG_MULTIPLE), columns + ["log_multiple"]
    late = _smoothed(known, columns, lc.moving_average)
    pts = late.filter(pl.col("frac") > lc.skip_fraction)
    x, y = _col(pts, column), _col(pts, f"score:{task}")
    anchor = _resolved_anchor(x, y, lc.anchor, lc.feature, task, warm, notes)
    if anchor:  # loss 0 -> the score's maximum (acc, acc_norm: 1)
        x, y = np.append(x, 0.0), np.append(y, 1.0)
    return pts, x, y, anchor


def shared_shapes(trains: list, tasks, lc, starts=None) -> tuple[dict, list, dict]:
    """ladder.shared_shape: per task, step 2's slope and rise fitted once on the step 2 points of every family in
    `trains` (their training rows), each family keeping its floor and midpoint (fit_sigmoid_shared). `starts`: a
    former call's curves, to start from (a bootstrap refit). Returns ({"shape:<task>": {k, headroom}} for the
    tasks with two or more families of 5 points or more, report lines, {task: (the families' indices in `trains`,
    their curves)})."""
    shapes, lines, curves = {}, [], {}
    for task in tasks:
        groups, which = [], []
        for i, train in enumerate(trains):
            if _feature_column(lc, task) in train.columns:
                _, x, y, _ = step2_points(train, task, lc, {}, [])
                if len(x) >= 5:
                    groups.append((x, y))
                    which.append(i)
        if len(groups) < 2:
            lines.append(f"  ladder ({task}): step 2's shape not shared: {len(groups)} families with 5 points or more, 2 needed")
            continue
        former = (starts or {}).get(task)
        fitted = fit_sigmoid_shared(groups, starts=former[1] if former and former[0] == which else None)
        curves[task] = (which, fitted)
        shapes[f"shape:{task}"] = shape = {name: fitted[0][name] for name in SHARED_SHAPE}  # every family's
        lines.append(
            f"  ladder ({task}): step 2's slope k {shape['k']:.4g} and rise (headroom) {shape['headroom']:.3g} shared by"
            f" {len(groups)} families"
        )
    return shapes, lines, curves


def ladder(train, held, tasks, cfg, warm):
    """Feature (task loss or pre-training loss) from C or (N, D), then the sigmoid to the score (settings: cfg.ladder)."""
    lc = cfg.ladder
    out = Prediction(scores={})
    finals = _finals(train)
    shared = {}  # the pre-training loss's step 1, fitted once for every task

    def fit_one(task):
        column = _feature_column(lc, task)
        if column not in train.columns:
            raise FitError("no task loss (a bits_per_byte metric) in task_scores; expected one, or ladder.feature: loss")
        if column == "loss":
            if not shared:
                shared["step1"] = _ladder_step1(finals, held, column, lc, warm, "loss", None, out.notes)
                out.params += shared["step1"][1]
            pred, _, start, step1, (residual, n_law) = shared["step1"]
        else:
            pred, rows, start, step1, (residual, n_law) = _ladder_step1(
                finals, held, column, lc, warm, "task_loss", task, out.notes
            )
            out.params += rows
        spread = residual_rms(residual, n_law)  # how far a new run's feature misses the law: for its interval
        pts, x, y, anchor = step2_points(train, task, lc, warm, out.notes)
        if lc.token_multiple:  # the sigmoid in L - g (log M - m0), m0 the points' mean log M (the anchor at m0)
            logm = _col(pts, "log_multiple")
            m0 = float(logm.mean()) if len(logm) else 0.0
            logm = np.append(logm - m0, [0.0] * int(anchor))
            s2 = fit_sigmoid_multiple(x, logm, y, start=warm.get(f"sigmoid:{task}"))
            held_logm = _col(held.with_columns(_LOG_MULTIPLE), "log_multiple") - m0
            out.scores[task] = s2.eval(x=pred, logm=held_logm)
            propagated = _propagate(lambda v: s2.eval(x=v, logm=held_logm), pred, spread)
            out.params += _rows(s2, "score", task, extra={"log_M0": m0})
        else:
            s2 = fit_sigmoid(x, y, start=warm.get(f"sigmoid:{task}"), fixed=warm.get(f"shape:{task}"))
            # the noise scales of errors in variables: the feature's robust (a few runs far off step 1's law, the
            # Huber fit's outliers, would set a root mean square), the score's the least-squares sigmoid's scatter
            sx, sy = robust_scale(residual), _scatter(s2, n_extra=int(anchor))
            # a feature or score without scatter: least squares is errors in variables' limit
            odr = lc.errors_in_variables and sx > 0 and sy > 0
            if odr:
                s2 = fit_sigmoid_odr(x, y, sx, sy, start=s2)
            out.scores[task] = s2.eval(x=pred)  # the fitted curve (its a is an expression of headroom and b)
            propagated = _propagate(lambda v: s2.eval(x=v), pred, spread)
            out.params += _odr_rows(s2, "score", task) if odr else _rows(s2, "score", task)
        out.add_scatter(task, _scatter(s2, n_extra=int(anchor)), len(y) - int(anchor), spread, propagated)
        out.features[task] = (column, pred)
        out.warm.update({column: start, f"step1:{column}": step1, f"sigmoid:{task}": start_of(s2), f"anchor:{task}": anchor})
        out.warm[f"shape:{task}"] = warm.get(f"shape:{task}")  # a shared shape is kept by the refits

    _per_task(tasks, out, fit_one)
    if lc.feature == "loss" and out.features:
        out.loss = next(iter(out.features.values()))[1]
    return out


def flpm_chain(train, held, tasks, cfg, warm):
    domains = domains_of(train)
    if not domains:
        raise FitError("no domain losses (domain_losses) at any checkpoint")
    finals = _finals(train)
    out = Prediction(scores={})
    predicted = []
    for d in domains:
        s1, c0, pred, _ = _stage1(finals, held, f"loss:{d}", warm, f"loss:{d}")
        predicted.append(pred)
        out.params += _rows(s1, f"loss:{d}", extra={"C0": c0})
        out.warm[f"loss:{d}"] = start_of(s1)
    x_held = np.stack(predicted, axis=1)
    out.loss = x_held.mean(axis=1)  # the pre-training loss is the mean of the domain losses (frames.py)

    def fit_one(task):
        pts = _known(train, f"score:{task}", *(f"loss:{d}" for d in domains))
        if pts.height < 2 * len(domains):
            raise FitError(
                f"FLP-M needs at least {2 * len(domains)} checkpoints with domain losses and a score, got {pts.height}"
            )
        x_train = np.stack([_col(pts, f"loss:{d}") for d in domains], axis=1)
        net = flpm.fit_domain_net(x_train, _col(pts, f"score:{task}"), start=warm.get(f"net:{task}"))
        out.scores[task] = net.predict(x_held)
        out.add_scatter(task, float(np.sqrt(net.train_mse)), pts.height)
        out.params.append(
            {
                "stage": "score",
                "task": task,
                "param": "train_mse",
                "value": net.train_mse,
                "stderr": math.nan,
                "n_points": pts.height,
                "stderr_note": "a statistic of the fit, not a parameter",
            }
        )
        out.warm[f"net:{task}"] = net.state()

    _per_task(tasks, out, fit_one)
    return out


PREDICTORS = {
    "direct": direct,
    "flat": flat,
    "flp": flp,
    "chinchilla": chinchilla_chain,
    "ladder": ladder,
    "flpm": flpm_chain,
}
