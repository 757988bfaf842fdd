"""The ensemble's weights, pooled or debiased: would the back-test inside the ladder choose another weighting?

The shipped ensemble weights each member per family and task by the inverse of its mean squared error on the
back-test inside the ladder (ensemble.weights). Alternatives, from the same inner back-test's squared errors
(recorded by wrapping ensemble.combine) and the members' same predictions: the inverse MSE pooled over a family's
tasks, over a task's families, or over everything (fewer, steadier weights); and the MSE less the inner held-out
scores' binomial sampling variance (p (1 - p) / n, the part no member can remove), half or all of it (floored at a
tenth of the MSE), which sharpens the weights on noisy tasks. And a naive third member, weighted the same way
(its inner prediction from the runs below the largest fitted rung): the largest fitted rung's final score
(persistence) or the mean of the fitted runs' final scores. Bootstrap 0: point errors only. Measured in issue
23's eleventh session (docs/scaling-backtests.md): none beat the shipped weighting inside both ladders.

    PYTHONPATH=workflow python resources/public/ensemble_weights.py CONFIG MAX_PARAMS RUNG
    # config/examples/mlfoundations-scaling.yaml 1e9 -412M-  |  config/examples/pythia-evals.yaml 5e9 -2.8b
"""

import sys
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).parent))
from choose_defaults import inside  # noqa: E402 (beside this script: the inside split's tables)

from lmforecast.fits.scaling import ScalingSettings, ensemble  # noqa: E402
from lmforecast.fits.scaling.backtest import backtest  # noqa: E402

RECORDS = []  # one per family and task: what ensemble.combine saw
_combine = ensemble.combine


def _recording(task, held, train, members, inner, inner_held, seed_noise, n_boot):
    out = _combine(task, held, train, members, inner, inner_held, seed_noise, n_boot)
    actual = inner_held[f"score:{task}"].to_numpy().astype(float)
    known = np.isfinite(actual)
    n = inner_held[f"n:{task}"].to_numpy().astype(float)[known]
    finals = train.filter(pl.col("is_final") & pl.col(f"score:{task}").is_not_null())
    below = finals.filter(pl.col("n_params") < finals["n_params"].max())  # the inner back-test's training runs
    RECORDS.append(
        {
            "family": held["family"][0],
            "task": task,
            "actual": held[f"score:{task}"].to_numpy().astype(float),
            "points": {m: np.asarray(v[0], float) for m, v in members.items()},
            "sq": {m: (np.asarray(inner[m], float)[known] - actual[known]) ** 2 for m in members if m in inner},
            "sampling_var": float(np.mean(actual[known] * (1 - actual[known]) / n)),
            "inner_actual": actual[known],
            # naive members: (full-data prediction, inner prediction)
            "persistence": (_top_score(finals, task), _top_score(below, task)),
            "mean": (finals[f"score:{task}"].mean(), below[f"score:{task}"].mean()),
        }
    )
    return out


def _top_score(finals, task) -> float:
    return finals.filter(pl.col("n_params") == finals["n_params"].max())[f"score:{task}"].mean()


def _rel_errors(record, mse: dict, points=None) -> list:
    inv = {m: 1.0 / max(v, 1e-8) for m, v in mse.items()}
    points = points or record["points"]
    point = sum(inv[m] / sum(inv.values()) * points[m] for m in inv)
    ok = np.isfinite(record["actual"])
    return list(np.abs(point - record["actual"])[ok] / record["actual"][ok])


def pooled(key) -> float:
    """Mean relative error with each member's MSE pooled over the records sharing `key`."""
    groups = {}
    for r in RECORDS:
        groups.setdefault(key(r), []).append(r)
    errors = []
    for group in groups.values():
        members = set.intersection(*(set(r["sq"]) for r in group))
        mse = {m: float(np.mean(np.concatenate([r["sq"][m] for r in group]))) for m in members}
        errors += [e for r in group for e in _rel_errors(r, mse)]
    return float(np.mean(errors))


def debiased(share: float) -> float:
    errors = []
    for r in RECORDS:
        mse = {m: float(np.mean(v)) for m, v in r["sq"].items()}
        errors += _rel_errors(r, {m: max(v - share * r["sampling_var"], 0.1 * v) for m, v in mse.items()})
    return float(np.mean(errors))


def with_naive(kind: str) -> float:
    """Mean relative error with a naive member `kind` (persistence or mean) beside the shipped ones."""
    errors = []
    for r in RECORDS:
        full, inner = r[kind]
        mse = {m: float(np.mean(v)) for m, v in r["sq"].items()} | {kind: float(np.mean((inner - r["inner_actual"]) ** 2))}
        errors += _rel_errors(r, mse, r["points"] | {kind: np.full(len(r["actual"]), full)})
    return float(np.mean(errors))


if __name__ == "__main__":  # the back-test's worker processes are spawned
    ensemble.combine = _recording
    path, max_params, rung = sys.argv[1:4]
    tables, sc = inside(path, float(max_params), rung)
    sc |= {"bootstrap": 0, "predictors": ["direct", "ladder", "ensemble"]}
    _, preds, _ = backtest(tables, ScalingSettings.from_dict(sc), workers=2)
    print(f"shipped (per family and task): {preds.filter(pl.col('predictor') == 'ensemble')['rel_error'].mean():.4f}")
    print(f"pooled over a family's tasks: {pooled(lambda r: r['family']):.4f}")
    print(f"pooled over a task's families: {pooled(lambda r: r['task']):.4f}")
    print(f"pooled over everything: {pooled(lambda r: 0):.4f}")
    for share in (0.5, 1.0):
        print(f"MSE less {share:g} x the sampling variance: {debiased(share):.4f}")
    for kind in ("persistence", "mean"):
        print(f"a naive member ({kind}) beside them: {with_naive(kind):.4f}")
