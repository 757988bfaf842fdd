"""The fits that scaling chains are built from (FLP of Chen et al. 2024, the OLMo ladder), with lmfit.

- Stage 1, compute -> loss: L(C) = E + A * (C / C0)^-alpha, C0 the geometric mean of the
  fitted compute (keeps A of order one). Fitted as the ladder and Epoch fit it: Huber loss
  (delta 1e-3) on log-residuals, parameters bounded, from a small grid of starts.
- Stage 2, loss -> score: FLP's line on emerged checkpoints, or the ladder's sigmoid
  a / (1 + exp(-k (L - L0))) + b (by least squares, or with errors in the loss too: fit_sigmoid_odr).

They run on the rows of fits.frames.checkpoint_frame (one per checkpoint).
"""

import warnings
from dataclasses import dataclass

import lmfit
import numpy as np
from scipy.optimize import least_squares
from scipy.sparse import lil_matrix

HUBER_DELTA = 1e-3
# scipy's trust-region least_squares, not lmfit's default leastsq: leastsq (MINPACK, C) gave
# different iterates from run to run on ill-conditioned sigmoids (a near-chance task), measured
# as one of two results depending on the process's memory layout; least_squares gave one
METHOD = "least_squares"


class FitError(Exception):
    """A predictor cannot be fitted on this data (too few points); the message says why."""


def _fit(model, y, params, **kw):
    """model.fit, its numpy warnings kept on the result (`fit_warnings`) instead of printed: an invalid
    sqrt in lmfit's covariance is a standard error that cannot be computed, said by stderr_note."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        result = model.fit(y, params, method=METHOD, **kw)
    result.fit_warnings = sorted({str(w.message) for w in caught})
    return result


def stderr_note(result, name: str) -> str | None:
    """Why parameter `name` of an lmfit result has no standard error (None: it has one)."""
    p = result.params[name]
    if not p.vary and p.expr is None:
        return (
            "held fixed: shared by the task's families (ladder.shared_shape), fitted on all of them at once; "
            "stderr_boot: its refits on every family's resampled runs"
        )
    if p.stderr is not None and np.isfinite(p.stderr):
        return None
    if not result.errorbars and not getattr(result, "fit_warnings", []):
        return "lmfit could not invert the Hessian: a parameter at a bound or not determined by the points"
    return "the covariance has a negative or invalid variance here: the optimum is at a bound or ill-conditioned"


# --- stage 1: compute -> loss ------------------------------------------------------------


def power_law(c, A, alpha, E):
    return E + A * np.power(c, -alpha)


def log_power_law(c, A, alpha, E):
    return np.log(E + A * np.power(c, -alpha))


def huber(r, delta=HUBER_DELTA, axis=None):
    """Sum of the Huber losses of residuals `r` (over `axis`): quadratic within delta, linear beyond."""
    a = np.abs(r)
    return np.where(a <= delta, 0.5 * a**2, delta * (a - 0.5 * delta)).sum(axis=axis)


def fit_power_law(compute, loss, start: dict | None = None):
    """L(C) = E + A (C/C0)^-alpha by Huber on log-residuals; returns (lmfit result, C0).

    From a grid of starts (Epoch's protocol, coarser), or from `start` alone (a bootstrap
    refit starts from the full-data fit).
    """
    compute, loss = np.asarray(compute, float), np.asarray(loss, float)
    if len(compute) < 3:
        raise FitError(f"stage 1 needs at least 3 points, got {len(compute)}")
    c0 = float(np.exp(np.mean(np.log(compute))))
    model = lmfit.Model(log_power_law, independent_vars=["c"])
    grid = [start] if start else [{"alpha": a, "E": f * loss.min()} for a in (0.1, 0.3, 0.6, 1.0) for f in (0.0, 0.5, 0.9)]
    best, best_obj = None, np.inf
    for s in grid:
        params = model.make_params()
        params["E"].set(value=min(s["E"], float(loss.min()) * 0.999), min=0.0, max=float(loss.min()))
        params["alpha"].set(value=s["alpha"], min=1e-4, max=3.0)
        params["A"].set(value=s.get("A", max(1e-6, float(np.median(loss)) - s["E"])), min=0.0)
        result = _fit(model, np.log(loss), params, c=compute / c0, fit_kws={"loss": "huber", "f_scale": HUBER_DELTA})
        obj = huber(result.residual)
        if obj < best_obj:
            best, best_obj = result, obj
    return best, c0


# --- stage 2: loss -> score ---------------------------------------------------------------


def fit_linear(x, y):
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < 3:
        raise FitError(f"a line needs at least 3 points, got {len(x)}")
    model = lmfit.models.LinearModel()
    return _fit(model, y, model.make_params(slope=0.0, intercept=float(y.mean())), x=x)


def fit_constant(y):
    """score = c (lmfit's ConstantModel): a task that does not scale, c the scores' mean with its standard error."""
    y = np.asarray(y, float)
    if len(y) < 3:
        raise FitError(f"a mean needs at least 3 points, got {len(y)}")
    model = lmfit.models.ConstantModel()
    return _fit(model, y, model.make_params(c=float(y.mean())), x=np.zeros(len(y)))


def sigmoid(x, a, k, L0, b):
    # far on the flat side exp overflows to inf and the term is 0, its limit: no warning to print
    with np.errstate(over="ignore"):
        return a / (1.0 + np.exp(-k * (x - L0))) + b


def _sigmoid_bounds(x) -> dict:
    """The sigmoid's bounds, name -> (min, max), shared by its fits: an accuracy, 0 <= b and a + b <= 1 through
    a = headroom * (1 - b) with headroom in [0, 1] (unbounded, a curve fitted on near-chance points extrapolated
    above 1); k <= 0 (accuracy falls as loss rises), at most 1e3 per spread of the loss; L0 within 3 spreads of
    the points."""
    spread = float(np.std(x)) or 1.0
    lo, hi = float(np.min(x)) - 3 * spread, float(np.max(x)) + 3 * spread
    return {"b": (0.0, 1.0), "headroom": (0.0, 1.0), "k": (-1e3 / spread, 0.0), "L0": (lo, hi)}


def _sigmoid_grid(x) -> list[dict]:
    """The sigmoid fits' grid of starts: two slopes per spread of the loss, L0 at the points' quartiles."""
    spread = float(np.std(x)) or 1.0
    return [{"k": -k / spread, "L0": float(q)} for k in (1.0, 4.0) for q in np.quantile(x, [0.25, 0.5, 0.75])]


def _bounded_sigmoid(params, x, start: dict):
    """An lmfit model's parameters of the sigmoid, bounded by _sigmoid_bounds and started at `start` (b, headroom,
    k, L0); a is the expression of headroom and b."""
    for name, (lo, hi) in _sigmoid_bounds(x).items():
        if name == "headroom":
            params.add(name, value=start[name], min=lo, max=hi)
            params["a"].set(expr="headroom * (1 - b)")
        else:
            params[name].set(value=start[name], min=lo, max=hi)
    return params


def fit_sigmoid(x, y, start: dict | None = None, fixed: dict | None = None):
    """The ladder's Acc(L) = a / (1 + exp(-k (L - L0))) + b, bounded as an accuracy (_sigmoid_bounds); the
    parameters in `fixed` (name -> value, e.g. a shape shared by families: fit_sigmoid_shared) held there."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < 5:
        raise FitError(f"the sigmoid has 4 parameters and needs at least 5 points, got {len(x)}")
    model = lmfit.Model(sigmoid)
    best = None
    for s in [start] if start else _sigmoid_grid(x):
        b0 = s.get("b", float(y.min()))
        headroom = s.get("headroom", min(1.0, max(0.01, float(y.max() - y.min())) / max(1e-6, 1.0 - b0)))
        params = _bounded_sigmoid(model.make_params(), x, s | {"b": b0, "headroom": headroom})
        for name, value in (fixed or {}).items():
            params[name].set(value=value, vary=False)
        result = _fit(model, y, params, x=x)
        if best is None or result.chisqr < best.chisqr:
            best = result
    return best


SHARED_SHAPE = ("k", "headroom")  # what a task's families share in step 2 (ladder.shared_shape): slope and rise


def fit_sigmoid_shared(groups, shared=SHARED_SHAPE, starts=None) -> list[dict]:
    """One sigmoid per family's points `groups` [(x, y)] with the parameters `shared` (default: the slope k and the
    rise headroom, a = headroom (1 - b)) common to all and the others (the floor b, the midpoint L0) each family's:
    a recipe moves where a task rises and where it starts, not how steeply or how far. Least squares over every
    point, from each family's own fit (a shared parameter at their median) or from `starts` (a curve per group: a
    bootstrap refit starts from the full fit's), bounded as fit_sigmoid on all points.
    Returns each family's curve {a, k, L0, b, headroom}."""
    own = starts or [start_of(fit_sigmoid(x, y)) for x, y in groups]
    bounds = _sigmoid_bounds(np.concatenate([np.asarray(x, float) for x, _ in groups]))
    params = lmfit.Parameters()
    for name, (lo, hi) in bounds.items():
        values = [min(hi, max(lo, start[name])) for start in own]
        if name in shared:
            params.add(name, value=float(np.median(values)), min=lo, max=hi)
        else:
            for g, value in enumerate(values):
                params.add(f"{name}{g}", value=value, min=lo, max=hi)

    def curve(p, g) -> dict:
        v = {name: p[name].value if name in shared else p[f"{name}{g}"].value for name in bounds}
        return {"a": v["headroom"] * (1 - v["b"]), "k": v["k"], "L0": v["L0"], "b": v["b"], "headroom": v["headroom"]}

    def residual(p):
        residuals = []
        for g, (x, y) in enumerate(groups):
            c = curve(p, g)
            residuals.append(sigmoid(np.asarray(x, float), c["a"], c["k"], c["L0"], c["b"]) - np.asarray(y, float))
        return np.concatenate(residuals)

    with warnings.catch_warnings(record=True):  # lmfit's covariance, which only the values here are taken from
        warnings.simplefilter("always", RuntimeWarning)
        result = lmfit.minimize(residual, params, method=METHOD)
    return [curve(result.params, g) for g in range(len(groups))]


@dataclass
class OdrFit:
    """The sigmoid fitted by orthogonal distance regression (fit_sigmoid_odr): its parameters and the score's
    residuals at the measured features (y - Acc(L_i): what a prediction at a given feature misses by)."""

    values: dict  # a, k, L0, b, headroom
    residual: np.ndarray
    sx: float
    sy: float
    nvarys: int = 4

    @property
    def ndata(self) -> int:
        return len(self.residual)

    def eval(self, x):
        return sigmoid(np.asarray(x, float), *(self.values[n] for n in ("a", "k", "L0", "b")))


def fit_sigmoid_odr(x, y, sx: float, sy: float, start) -> OdrFit:
    """fit_sigmoid's bounded curve by errors in variables: the feature is noisy too (scale sx; the score's sy).

    Orthogonal distance regression in its Deming form, with a latent feature L*_i per point: minimises
    sum_i ((y_i - Acc(L*_i)) / sy)^2 + ((L_i - L*_i) / sx)^2 over the curve and the L*_i, started from the
    least-squares fit `start` (an lmfit result of fit_sigmoid). On scipy's least_squares, not scipy.odr:
    scipy.odr has no bounds (0 <= b, a + b <= 1, k <= 0 here) and is deprecated since scipy 1.17, lmfit has
    no ODR; least_squares keeps the bounds and, told the Jacobian's sparsity (each L*_i enters two
    residuals), needs a few evaluations per step.
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    n, bounds = len(x), _sigmoid_bounds(x)  # b, headroom, k, L0: z's first four, then the latent features
    lo = [lo for lo, _ in bounds.values()] + [-np.inf] * n
    hi = [hi for _, hi in bounds.values()] + [np.inf] * n
    z0 = np.clip([start.params[name].value for name in bounds] + list(x), lo, hi)

    def residual(z):
        b, headroom, k, L0, latent = z[0], z[1], z[2], z[3], z[4:]
        return np.concatenate([(y - sigmoid(latent, headroom * (1 - b), k, L0, b)) / sy, (x - latent) / sx])

    sparsity = lil_matrix((2 * n, n + 4), dtype=int)
    sparsity[:n, :4] = 1
    sparsity[np.arange(n), 4 + np.arange(n)] = 1
    sparsity[n + np.arange(n), 4 + np.arange(n)] = 1
    z = least_squares(residual, z0, bounds=(lo, hi), jac_sparsity=sparsity, method="trf").x
    values = {"a": z[1] * (1 - z[0]), "k": z[2], "L0": z[3], "b": z[0], "headroom": z[1]}
    fit = OdrFit({k: float(val) for k, val in values.items()}, np.empty(0), sx, sy)
    fit.residual = y - fit.eval(x)
    return fit


def residual_rms(r, n_params: int) -> float:
    """sqrt(sum r^2 / (n - p)): how far a new run misses a law of p parameters fitted to runs with residuals `r`.
    Not a median of |r|: the Huber fits here (delta 1e-3, nearly least absolute deviations) pass through about p
    points exactly, so that on a short ladder the median residual is near 0."""
    r = np.asarray(r, float)
    return float(np.sqrt(np.sum(r**2) / max(1, len(r) - n_params)))


def robust_scale(r) -> float:
    """The normal-consistent median absolute deviation of residuals `r` (of a Huber fit: its outliers not counted)."""
    r = np.asarray(r, float)
    return float(1.4826 * np.median(np.abs(r - np.median(r))))


def start_of(result) -> dict:
    """A fit's parameter values, as the start of a refit."""
    if isinstance(result, OdrFit):
        return dict(result.values)
    return {name: p.value for name, p in result.params.items()}


# over-training: M = D/N, tokens per parameter. Bounds of g, loss units per e-fold of M: 0 (the plain sigmoid) to a
# value far past the fits on the public examples (the largest, on Pythia, near 1: at the bound, reported in the README)
G_MAX = 1.0


def sigmoid_multiple(x, logm, a, k, L0, b, g):
    """The sigmoid in the effective loss x - g logm, logm = log M less the fitted points' mean: an over-trained
    model (larger M) scores as one of lower loss; equally, L0 shifted by g logm."""
    return sigmoid(x - g * logm, a, k, L0, b)


def fit_sigmoid_multiple(x, logm, y, start: dict | None = None, g_min: float = 0.0):
    """fit_sigmoid's curve and bounds in the effective loss x - g logm, g in [g_min, G_MAX] (g_min < 0: a diagnostic only).

    From the plain sigmoid's fit (g = 0: never worse than it) and fit_sigmoid's grid, each with g at 0 and at
    0.05 x the loss's spread; or from `start` alone (a bootstrap refit).
    """
    x, logm, y = np.asarray(x, float), np.asarray(logm, float), np.asarray(y, float)
    if len(x) < 6:
        raise FitError(f"the sigmoid in L - g log M has 5 parameters and needs at least 6 points, got {len(x)}")
    model = lmfit.Model(sigmoid_multiple, independent_vars=["x", "logm"])
    spread = float(np.std(x)) or 1.0
    if start:
        starts = [start]
    else:
        plain = start_of(fit_sigmoid(x, y))
        g0 = sorted({0.0, max(g_min, 0.0) + 0.05 * spread})
        grid = [s | {"b": float(y.min()), "headroom": 0.5} for s in _sigmoid_grid(x)]
        starts = [s | {"g": g} for s in [plain, *grid] for g in g0]
    best = None
    for s in starts:
        params = _bounded_sigmoid(model.make_params(), x, s)
        params["g"].set(value=min(max(s["g"], g_min), G_MAX), min=g_min, max=G_MAX)
        result = _fit(model, y, params, x=x, logm=logm)
        if best is None or result.chisqr < best.chisqr:
            best = result
    return best
