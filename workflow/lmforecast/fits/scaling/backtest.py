"""Back-test every predictor the same way: fit on a family's smaller runs, predict the held-out ones, and forecast
the runs not trained (fit.scaling.forecast) with the same fits.

A family is the runs of one recipe (mixture, objective, learning rate) at several scales.
The held-out runs are the family's largest-compute run (`holdout: largest_compute`) or the named runs (`holdout: [names]`).
Each predictor is fitted on the other runs' checkpoints and predicts the held-out runs'
final scores from their compute (and N, D). Intervals come from a bootstrap over runs:
the training runs are resampled with replacement `bootstrap` times, every predictor is
refitted on each resample (from its full-data fit) and predicts again; the interval is the
2.5-97.5 % range of those predictions, so it carries both stages' uncertainty. The same
resamples give bootstrap standard errors of every parameter, beside lmfit's (Jacobian).
"""

import math
import multiprocessing
import zlib
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import polars as pl

from lmforecast.fits.scaling import ensemble
from lmforecast.fits.scaling.curves import FitError
from lmforecast.fits.scaling.frames import checkpoint_frame, family_parts, held_normal, planned_frame, planned_mask, tasks_of
from lmforecast.fits.scaling.predictors import PREDICTORS, shared_shapes

MIN_TRAIN_RUNS = 3

PARAMS_SCHEMA = {
    "predictor": pl.String,
    "family": pl.String,
    "stage": pl.String,
    "task": pl.String,
    "param": pl.String,
    "value": pl.Float64,
    "stderr": pl.Float64,
    "stderr_boot": pl.Float64,
    "n_points": pl.Int64,
    "stderr_note": pl.String,  # why stderr is missing (None: it is not)
}
PREDICTIONS_SCHEMA = {
    "predictor": pl.String,
    "family": pl.String,
    "task": pl.String,
    "run": pl.String,
    "n_params": pl.Float64,
    "tokens": pl.Float64,
    "flops": pl.Float64,
    "loss_actual": pl.Float64,
    "loss_pred": pl.Float64,  # the chain's predicted pre-training loss (NaN: it has none)
    "feature": pl.String,  # the chain's intermediate: loss, bits_per_byte (the task's), or None (direct)
    "feature_actual": pl.Float64,
    "feature_pred": pl.Float64,
    "score_actual": pl.Float64,
    # the actual score's binomial sampling error, sqrt(p (1 - p) / n) over the task's n examples (NaN: n unknown): the
    # error a forecaster exact in expectation still has, as the benchmark is finite
    "score_actual_se": pl.Float64,
    "score_pred": pl.Float64,
    "score_lo": pl.Float64,
    "score_hi": pl.Float64,
    "n_fit_runs": pl.Int64,
    "n_boot": pl.Int64,
    # the draw of each bootstrap resample j (NaN: none), paired across families by j: rankings of families' runs
    # at a shared scale are read off them (evaluation.forecast_ranking, ranking_backtest)
    "score_draws": pl.List(pl.Float64),
}
# a planned run's forecast: a prediction's columns without the actual values
FORECAST_COLUMNS = (
    "predictor",
    "family",
    "task",
    "run",
    "n_params",
    "tokens",
    "flops",
    "loss_pred",
    "feature",
    "feature_pred",
    "score_pred",
    "score_lo",
    "score_hi",
    "n_fit_runs",
    "n_boot",
    "score_draws",
)


def held_out_runs(finals: pl.DataFrame, holdout) -> list[str]:
    if holdout == "largest_compute":
        return [finals.sort("flops")["run"][-1]]
    return [r for r in holdout if r in set(finals["run"])]


def _family_keys_hint(frame: pl.DataFrame, family_keys) -> str:
    """Why no family could be fitted; where a learning rate per size (as ladders tune it) split the runs into
    families too small to fit, says so: without lr among the keys they would form one."""
    why = f"no family could be fitted: each needs at least {MIN_TRAIN_RUNS} runs to fit and 1 to predict"
    others = [k for k in family_keys if k != "lr"]
    if "lr" not in family_keys or not others:
        return why
    largest = frame.filter(pl.col("is_final")).select(**family_parts()).group_by(others).len()["len"].max()
    if largest <= MIN_TRAIN_RUNS:
        return why
    return (
        f"no family could be fitted: the runs differ in lr within what would otherwise be a family of {largest} runs;"
        f" if the ladder sets lr per size, leave it out of fit.scaling.family_keys (now {list(family_keys)})"
    )


def resample_runs(train: pl.DataFrame, rng) -> pl.DataFrame | None:
    """The training checkpoints of runs drawn with replacement (each draw a distinct run name)."""
    names = sorted(train["run"].unique())
    draw = rng.integers(0, len(names), len(names))
    if len(set(draw.tolist())) < MIN_TRAIN_RUNS:
        return None
    return pl.concat(
        [train.filter(pl.col("run") == names[i]).with_columns(pl.lit(f"{names[i]}#{j}").alias("run")) for j, i in enumerate(draw)]
    )


def planned_runs(frame: pl.DataFrame, cfg) -> dict:
    """family -> the rows of fit.scaling.forecast's planned runs (frames.planned_frame), each checked before any fit:
    a new name, a family with runs, and a compute that, left to 6 N D, is counted as its family's runs count theirs."""
    if not cfg.forecast:
        return {}
    rows = planned_frame(cfg.forecast, cfg.family_keys)
    finals = frame.filter(pl.col("is_final"))
    families = sorted(finals["family"].unique())
    for i, (p, family) in enumerate(zip(cfg.forecast, rows["family"])):
        where = f"fit.scaling.forecast[{i}] ({p.name})"
        if p.name in set(frame["run"]):
            raise ValueError(f"{where}: the tables have a run of that name; expected the name of a run not trained")
        if family not in families:
            raise ValueError(
                f"{where}: family {family!r} has no runs in the tables; expected one of {families}"
                f" (a family is the runs' {'/'.join(cfg.family_keys)}: fit.scaling.family_keys)"
            )
        if p.flops is not None:
            continue
        fam = finals.filter(pl.col("family") == family)
        ratio = (fam["flops"] / (6.0 * fam["n_params"] * fam["tokens"])).median()
        if ratio is not None and not 0.9 <= ratio <= 1.1:
            raise ValueError(
                f"{where}: no flops given, and family {family!r}'s runs do not count compute as 6 N D (their flops /"
                f" 6 N D: {ratio:.3g}); expected flops for this run in their convention"
            )
    return {family: part for (family,), part in rows.group_by("family")}


def backtest(tables: dict, cfg, seed: int = 0, workers: int = 1):
    """Returns (params, predictions, report lines) over every family x predictor x task (forecast() also returns
    the planned runs' forecasts)."""
    params, preds, _, report = forecast(tables, cfg, seed, workers)
    return params, preds, report


def forecast(tables: dict, cfg, seed: int = 0, workers: int = 1):
    """Returns (params, predictions, forecasts, report lines): the back-test's tables over every family x predictor x
    task, and each planned run's forecast by the same fits (FORECAST_COLUMNS; empty without fit.scaling.forecast).

    `cfg`: the fit's ScalingSettings. Each (family, predictor) is fitted independently, with its
    own seeded resamples, so `workers` processes give the same tables as one.
    """
    frame = checkpoint_frame(tables, cfg)
    planned = planned_runs(frame, cfg)
    if cfg.holdout != "largest_compute":
        unknown = sorted(set(cfg.holdout) - set(frame["run"]))
        if unknown:  # would otherwise leave a family without a held-out run, silently
            raise ValueError(f"fit.scaling.holdout: {unknown} are not runs of the tables; expected names from runs.run")
    tasks = tasks_of(frame)
    members = [name for name in cfg.predictors if name != ensemble.NAME]
    if not members:
        raise ValueError("fit.scaling.predictors: ensemble combines the other predictors; expected at least one more")
    unknown = sorted(set(cfg.ensemble_members or ()) - set(members))
    if unknown:
        raise ValueError(f"fit.scaling.ensemble_members: {unknown} are not in fit.scaling.predictors; expected some of {members}")
    plan = []  # (family's report line, its units): a unit is one predictor on one family
    contexts = {}  # family -> (training rows, held rows, inner held rows or why there are none), for the ensemble
    for family in sorted(frame["family"].unique()):
        fam = frame.filter(pl.col("family") == family)
        held_runs = held_out_runs(fam.filter(pl.col("is_final")), cfg.holdout)
        train = fam.filter(~pl.col("run").is_in(held_runs))
        held = fam.filter(pl.col("is_final") & pl.col("run").is_in(held_runs)).sort("run")
        n_train = train["run"].n_unique()
        forecast_runs = list(planned[family]["run"]) if family in planned else []
        if not held_runs or n_train < MIN_TRAIN_RUNS:
            plan.append(
                (
                    f"[{family}] skipped: {n_train} training runs and {len(held_runs)} held out;"
                    f" need at least {MIN_TRAIN_RUNS} to fit and 1 to predict"
                    + (f"; no forecast of {', '.join(forecast_runs)}" if forecast_runs else ""),
                    [],
                )
            )
            continue
        if forecast_runs:  # the planned runs are predicted beside the held-out ones, by the same fits
            held = pl.concat([held, planned[family]], how="diagonal_relaxed")
        inner = None  # the back-test inside the ladder that weights the ensemble: each member's unit also fits it
        if ensemble.NAME in cfg.predictors:
            try:
                inner = ensemble.inner_split(train, MIN_TRAIN_RUNS)
            except FitError as e:
                inner = e
        split = inner if isinstance(inner, tuple) else None
        units = [(family, name, train, held, tasks, cfg, seed, split) for name in members]
        forecasting = f"; forecasting {', '.join(forecast_runs)}" if forecast_runs else ""
        plan.append((f"[{family}] fitted on {n_train} runs, predicting {', '.join(held_runs)}{forecasting}", units))
        contexts[family] = (train, held, inner[1] if split else inner)
    shapes, report_head = _shared_shapes(plan, tasks, cfg)
    plan = [(line, [u + (shapes,) for u in us]) for line, us in plan]
    units = [u for _, us in plan for u in us]
    if not units:
        plan.append((_family_keys_hint(frame, cfg.family_keys), []))
    if workers > 1 and len(units) > 1:
        # spawn, not fork: a forked child can deadlock on locks held by polars' and torch's thread pools
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), initializer=_one_thread) as pool:
            results = iter(list(pool.map(_fit_predictor, units)))
    else:
        results = (_fit_predictor(u) for u in units)
    param_rows, pred_rows, report = [], [], report_head
    for line, family_units in plan:
        report.append(line)
        outer, inner = {}, {}
        for unit in family_units:
            params, preds, lines, raw = next(results)
            param_rows += params
            pred_rows += preds
            report += lines
            if raw is not None:
                outer[unit[1]] = raw
                if raw["inner"] is not None:
                    inner[unit[1]] = raw["inner"]
        if family_units and ensemble.NAME in cfg.predictors:
            params, preds, lines = _ensemble(family_units[0][0], contexts[family_units[0][0]], outer, inner, tasks, cfg, seed)
            param_rows += params
            pred_rows += preds
            report += lines
    params = pl.DataFrame(param_rows, schema=PARAMS_SCHEMA)
    preds = pl.DataFrame(pred_rows, schema=PREDICTIONS_SCHEMA)
    is_planned = pl.col("run").is_in([p.name for p in cfg.forecast])
    forecasts = preds.filter(is_planned).select(FORECAST_COLUMNS)
    preds = preds.filter(~is_planned).with_columns(
        (pl.col("score_pred") - pl.col("score_actual")).abs().alias("abs_error"),
        ((pl.col("score_pred") - pl.col("score_actual")).abs() / pl.col("score_actual")).alias("rel_error"),
        ((pl.col("score_lo") <= pl.col("score_actual")) & (pl.col("score_actual") <= pl.col("score_hi"))).alias("covered"),
    )
    return params, preds, forecasts, report


def _shared_shapes(plan, tasks, cfg):
    """ladder.shared_shape: step 2's slope and rise per task fitted once on every fitted family's training runs,
    once more on their runs inside the ladder (the ensemble's inner back-test must not see its held rung), and once
    per bootstrap resample on every family's resample j (the very runs each family's refit j draws: the same
    seeded generator), so that the refits, and the interval, carry the shape's own uncertainty.
    Returns ((shapes, inner shapes, [shapes of resample j]): "shape:<task>" -> {k, headroom} or None, report lines)."""
    if not (cfg.ladder.shared_shape and "ladder" in cfg.predictors):
        return ({}, {}, []), []
    first = [us[0] for _, us in plan if us]  # one unit per fitted family: (family, name, train, held, tasks, cfg, seed, split)
    shapes, lines, curves = shared_shapes([u[2] for u in first], tasks, cfg.ladder)
    if not shapes:
        return ({}, {}, []), lines
    inner = shared_shapes([u[7][0] for u in first if u[7] is not None], tasks, cfg.ladder)[0]
    rngs = [_resample_rng(u[6], u[0]) for u in first]
    boot = []
    for _ in range(cfg.bootstrap):
        samples = [resample_runs(u[2], rng) for u, rng in zip(first, rngs)]
        # a family whose draw is refused (too few distinct runs) is not refitted on it: its training runs stand in
        trains = [u[2] if s is None else s for u, s in zip(first, samples)]
        boot.append(shared_shapes(trains, tasks, cfg.ladder, starts=curves)[0])
    return (shapes, {key: inner.get(key) for key in shapes}, boot), lines


def _resample_rng(seed, family):
    """The generator of a family's bootstrap resamples: seeded by the family only (crc32: stable across processes),
    so that every predictor, and the shared shape's refits, see the same resamples."""
    return np.random.default_rng([seed, zlib.crc32(family.encode())])


def sampling_se(score: float, n) -> float:
    """The binomial standard error of a share `score` of `n` examples (NaN where n is unknown)."""
    return math.nan if n is None else math.sqrt(score * (1.0 - score) / n)


def _float(value) -> float:
    return math.nan if value is None else float(value)


def _one_thread():
    import torch

    torch.set_num_threads(1)  # as the parent: FLP-M's network is tiny


def _fit_predictor(unit):
    """One predictor on one family: the full-data fit, its bootstrap refits, and their rows."""
    family, name, train, held, tasks, cfg, seed, inner, (shapes, inner_shapes, boot_shapes) = unit
    param_rows, pred_rows, report = [], [], []
    rng = _resample_rng(seed, family)
    try:
        point = PREDICTORS[name](train, held, tasks, cfg, dict(shapes) if name == "ladder" else {})
    except FitError as e:
        return [], [], [f"  {name}: not fitted: {e}"], None
    report += [f"  {name}: {note}" for note in dict.fromkeys(point.notes)]  # once each, not per task
    for task, why in point.skipped.items():
        report.append(f"  {name} ({task}): not fitted: {why}")
    boot_params = defaultdict(list)
    drawn = defaultdict(dict)  # task -> {resample index: scores}: the ensemble combines members resample by resample
    for j in range(cfg.bootstrap):
        sample = resample_runs(train, rng)
        if sample is None:
            continue
        # the ladder's refit j holds the shared shape refitted on every family's resample j
        warm = point.warm | boot_shapes[j] if name == "ladder" and boot_shapes else point.warm
        try:
            refit = PREDICTORS[name](sample, held, tasks, cfg, warm)
        except FitError:
            continue
        for task, scores in refit.scores.items():
            drawn[task][j] = np.asarray(scores, float)
        for row in refit.params:
            boot_params[(row["stage"], row["task"], row["param"])].append(row["value"])
    n_train = train["run"].n_unique()
    for row in point.params:
        boot = [] if row.pop("no_boot", False) else boot_params.get((row["stage"], row["task"], row["param"]), [])
        param_rows.append(
            {
                "predictor": name,
                "family": family,
                **row,
                "stderr_boot": float(np.std(boot, ddof=1)) if len(boot) > 1 else math.nan,
            }
        )
    for task, scores in point.scores.items():
        column, feature = point.features.get(task, ("loss", point.loss))
        boot = np.array(list(drawn[task].values())) if drawn[task] else np.full((0, held.height), np.nan)
        if cfg.interval != "bootstrap" and len(boot) and task in point.scatter:
            # a prediction interval: each refit's prediction plus a draw of the residual scatter a new run shows
            sd = np.full(held.height, point.scatter[task])
            if cfg.interval == "prediction" and task in point.propagated:
                sd = np.sqrt(sd**2 + point.propagated[task] ** 2)
            noise = np.random.default_rng([seed, zlib.crc32(f"{family}/{name}/{task}".encode())])
            boot = boot + held_normal(noise, len(boot), held) * sd
        drawn_at = (list(drawn[task]), cfg.bootstrap)  # the resample index of each row of boot
        for i, row in _prediction_rows(name, family, task, held, scores, boot, n_train, drawn_at):
            row["loss_pred"] = float(point.loss[i]) if point.loss is not None else math.nan
            if feature is not None:
                row["feature"] = column.split(":")[0].replace("bpb", "bits_per_byte")
                row["feature_actual"], row["feature_pred"] = _float(held[column][i]), float(feature[i])
            pred_rows.append(row)
    inner_scores = None
    if inner is not None:  # without the largest training rung, started from the full fit (as a bootstrap refit)
        try:
            warm = point.warm | (inner_shapes if name == "ladder" else {})  # the shared shape without the held rung
            inner_scores = PREDICTORS[name](inner[0], inner[1], tasks, cfg, warm).scores
        except FitError as e:
            report.append(f"  {name}: not fitted on the back-test inside the ladder: {e}")
    raw = {"scores": point.scores, "draws": drawn, "scatter": point.scatter, "inner": inner_scores}
    return param_rows, pred_rows, report, raw


def _ensemble(family, context, outer, inner, tasks, cfg, seed):
    """The ensemble's rows on one family, from its members' fits (`outer`) and inner back-tests (`inner`)."""
    train, held, inner_held = context
    if isinstance(inner_held, FitError):
        return [], [], [f"  {ensemble.NAME}: not fitted: {inner_held}"]
    param_rows, pred_rows, report = [], [], []
    n_train = train["run"].n_unique()
    for task in tasks:
        have = {
            m: (r["scores"][task], r["draws"].get(task, {}), r["scatter"].get(task, 0.0))
            for m, r in outer.items()
            if task in r["scores"] and (cfg.ensemble_members is None or m in cfg.ensemble_members)
        }
        noise = np.random.default_rng([seed, zlib.crc32(f"{family}/{ensemble.NAME}/{task}".encode())])
        try:
            point, boot, drawn_at, w, inner_rmse, sd = ensemble.combine(
                task, held, train, have, {m: s[task] for m, s in inner.items() if task in s}, inner_held, noise, cfg.bootstrap
            )
        except FitError as e:
            report.append(f"  {ensemble.NAME} ({task}): not fitted: {e}")
            continue
        base = {"predictor": ensemble.NAME, "family": family, "stage": "weight", "task": task, "stderr": math.nan}
        base |= {"stderr_boot": math.nan, "n_points": inner_held.height}
        param_rows += [base | {"param": m, "value": v, "stderr_note": ensemble.WEIGHT_NOTE} for m, v in sorted(w.items())]
        note = "a statistic of the back-test inside the ladder, not fitted"
        param_rows += [
            base | {"stage": "interval", "param": k, "value": v, "stderr_note": note}
            for k, v in (("inner_rmse", inner_rmse), ("noise_sd", sd))
        ]
        drawn_at = (drawn_at, cfg.bootstrap)
        pred_rows += [row for _, row in _prediction_rows(ensemble.NAME, family, task, held, point, boot, n_train, drawn_at)]
    return param_rows, pred_rows, report


def _prediction_rows(name, family, task, held, scores, boot, n_train, drawn_at):
    """(index, row) of each held-out run with an actual score and of each planned run (its actual NaN): the
    prediction, its 95% interval from the resamples' predictions `boot` (resamples x runs), and no loss or feature (a
    chain fills them in). The score is an accuracy (acc, acc_norm): a prediction or a bound past [0, 1] (a line
    extrapolated, a normal draw of the scatter) is set to 0 or 1, which is nearer every possible score. `score_draws`:
    the run's draw at each resample index j < bootstrap (NaN where resample j was not refitted; `drawn_at`: (the
    index of each row of boot, bootstrap)), so that families can be compared draw by draw."""
    planned = planned_mask(held)
    indices, n_boot = drawn_at
    for i, run in enumerate(held["run"]):
        if held[f"score:{task}"][i] is None and not planned[i]:
            continue  # nothing to compare with
        lo, hi = np.clip(np.quantile(boot[:, i], [0.025, 0.975]), 0.0, 1.0) if len(boot) else (math.nan, math.nan)
        yield (
            i,
            {
                "predictor": name,
                "family": family,
                "task": task,
                "run": run,
                "n_params": float(held["n_params"][i]),
                "tokens": float(held["tokens"][i]),
                "flops": float(held["flops"][i]),
                "loss_actual": _float(held["loss"][i]),
                "loss_pred": math.nan,
                "feature": None,
                "feature_actual": math.nan,
                "feature_pred": math.nan,
                "score_actual": _float(held[f"score:{task}"][i]),
                "score_actual_se": sampling_se(held[f"score:{task}"][i], held[f"n:{task}"][i]),
                "score_pred": float(np.clip(scores[i], 0.0, 1.0)),
                "score_lo": float(lo),
                "score_hi": float(hi),
                "n_fit_runs": n_train,
                "n_boot": len(boot),
                "score_draws": _aligned(boot[:, i], indices, n_boot),
            },
        )


def _aligned(draws, indices, n_boot) -> list[float]:
    """Draws at resample indices `indices`, as a list over 0..n_boot-1 (NaN where a resample has no draw)."""
    out = np.full(n_boot, np.nan)
    out[np.asarray(indices, int)] = np.clip(draws, 0.0, 1.0)
    return out.tolist()
