"""L(N, D) = E + A / N^alpha + B / D^beta, fitted by Epoch AI's protocol (Besiroglu et al. 2024).

The fit minimises the Huber loss (delta 1e-3) of log L_hat - log L, with log L_hat written
as logsumexp(a - alpha log N, b - beta log D, e) (A = exp a, B = exp b, E = exp e), by
L-BFGS-B from Epoch's grid of starts. To keep it fast, every grid point's objective is
computed at once and L-BFGS-B runs from the `n_starts` best of them (Epoch runs from all
4,500; tests/test_chinchilla.py checks that the optimum is theirs). The best result is
refined with lmfit, which gives the fit report. Standard errors come from a bootstrap over data points, each
resample refitted from the full-data optimum (as Epoch reports them).

`tied=True` fits alpha = beta (one exponent): Gadre et al. 2024's over-training law
L(C, M) = E + (a M^eta + b M^-eta) C^-eta, with C = 6ND and M = D/N, is this form in (N, D)
(A = a 6^-eta, B = b 6^-eta, alpha = beta = eta); one parameter fewer to extrapolate with.
"""

import itertools
from dataclasses import dataclass

import lmfit
import numpy as np
from scipy.optimize import minimize
from scipy.special import logsumexp, softmax

from lmforecast.fits.scaling.curves import huber

NAMES = ("a", "b", "e", "alpha", "beta")
GRID = {
    "a": np.arange(0, 30, 5.0),
    "b": np.arange(0, 30, 5.0),
    "e": np.arange(-1, 1.5, 0.5),
    "alpha": np.arange(0, 2.5, 0.5),
    "beta": np.arange(0, 2.5, 0.5),
}


@dataclass
class ChinchillaFit:
    params: dict  # A, B, E, alpha, beta
    stderr: dict  # bootstrap standard errors of the same
    objective: float
    n_points: int
    report: str


def _terms(theta, log_n, log_d):
    a, b, e, alpha, beta = theta
    return np.stack([a - alpha * log_n, b - beta * log_d, np.full_like(log_n, e)])


def huber_objective(theta, log_n, log_d, log_l, delta):
    """Sum of Huber losses of log residuals, and its gradient in (a, b, e, alpha, beta)."""
    terms = _terms(theta, log_n, log_d)
    r = logsumexp(terms, axis=0) - log_l
    loss = huber(r, delta)
    dr = np.clip(r, -delta, delta)
    w = softmax(terms, axis=0)
    grad = np.array(
        [(dr * w[0]).sum(), (dr * w[1]).sum(), (dr * w[2]).sum(), -(dr * w[0] * log_n).sum(), -(dr * w[1] * log_d).sum()]
    )
    return loss, grad


# The objective is of order 1e-3; L-BFGS-B's default ftol is absolute below 1 and would stop
# a refit after one step (the bootstrap then reproduces its start and SEs collapse).
_TOLERANCES = {"ftol": 1e-14, "gtol": 1e-10, "maxiter": 5000}


def _tied_objective(theta4, log_n, log_d, log_l, delta):
    """huber_objective with beta = alpha: theta4 is (a, b, e, alpha), the gradient in alpha sums both exponents'."""
    loss, grad = huber_objective(np.append(theta4, theta4[3]), log_n, log_d, log_l, delta)
    return loss, np.append(grad[:3], grad[3] + grad[4])


def _minimize(start, data, delta, tied=False):
    if tied:
        result = minimize(_tied_objective, start[:4], args=(*data, delta), jac=True, method="L-BFGS-B", options=_TOLERANCES)
        result.x = np.append(result.x, result.x[3])  # back to the five parameters, beta = alpha
        return result
    return minimize(huber_objective, start, args=(*data, delta), jac=True, method="L-BFGS-B", options=_TOLERANCES)


def _natural(theta) -> dict:
    a, b, e, alpha, beta = theta
    return {"A": float(np.exp(a)), "B": float(np.exp(b)), "E": float(np.exp(e)), "alpha": float(alpha), "beta": float(beta)}


def _grid_objectives(starts, log_n, log_d, log_l, delta):
    """The Huber objective at every grid point (rows of `starts`), vectorized."""
    a, b, e, alpha, beta = (starts[:, i : i + 1] for i in range(5))
    terms = np.stack([a - alpha * log_n, b - beta * log_d, np.broadcast_to(e, (len(starts), len(log_n)))])
    return huber(logsumexp(terms, axis=0) - log_l, delta, axis=1)


def fit_chinchilla(
    n_params, tokens, loss, delta=1e-3, n_bootstrap=200, seed=0, grid=GRID, n_starts=50, start: dict | None = None, tied=False
) -> ChinchillaFit:
    """`start` (a fit's params): refit from there alone, no grid, no bootstrap (a bootstrap refit).
    `tied`: alpha = beta (see the module docstring)."""
    log_n, log_d, log_l = (np.log(np.asarray(x, dtype=np.float64)) for x in (n_params, tokens, loss))
    data = (log_n, log_d, log_l)
    if start:
        # a term the full fit drove to nothing has A (or B) = exp(a) = 0.0 after underflow: start it at the smallest float
        logs = [np.log(max(start[k], np.finfo(float).tiny)) for k in ("A", "B", "E")]
        theta = np.array([*logs, start["alpha"], start["beta"]])
        result = _minimize(theta, data, delta, tied)
        return ChinchillaFit(params=_natural(result.x), stderr={}, objective=float(result.fun), n_points=len(log_l), report="")
    starts = np.array(list(itertools.product(*(grid[k] for k in NAMES))))
    if tied:  # the grid's points with beta = alpha
        starts = starts[starts[:, 3] == starts[:, 4]]
    ranked = starts[np.argsort(_grid_objectives(starts, *data, delta), kind="stable")[:n_starts]]
    best = None
    for start in ranked:
        result = _minimize(start, data, delta, tied)
        if best is None or result.fun < best.fun:
            best = result
    # Refine with lmfit from the grid's best: named parameters and a readable report.
    params = lmfit.Parameters()
    for name, value in zip(NAMES, best.x):
        params.add(name, value=value)
    if tied:
        params["beta"].set(expr="alpha")
    refined = lmfit.minimize(
        lambda p: huber_objective(np.array([p[k].value for k in NAMES]), *data, delta)[0], params, method="lbfgsb"
    )
    theta = np.array([refined.params[k].value for k in NAMES])
    if huber_objective(theta, *data, delta)[0] > best.fun:
        theta = best.x
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(n_bootstrap):
        idx = rng.integers(0, len(log_l), len(log_l))
        draws.append(_natural(_minimize(theta, (log_n[idx], log_d[idx], log_l[idx]), delta, tied).x))
    stderr = {k: float(np.std([d[k] for d in draws], ddof=1)) for k in draws[0]} if draws else {}
    return ChinchillaFit(
        params=_natural(theta),
        stderr=stderr,
        objective=float(huber_objective(theta, *data, delta)[0]),
        n_points=len(log_l),
        report=lmfit.fit_report(refined),
    )
