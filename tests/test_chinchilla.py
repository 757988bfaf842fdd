"""Known answer: Epoch AI's Chinchilla replication (tests/data/README.md names the source)."""

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from lmforecast.fits.scaling.chinchilla import fit_chinchilla, huber_objective

DATA = Path(__file__).parent / "data" / "chinchilla_svg_extracted_data.csv"
PUBLISHED = {"A": (482.0, 124.5), "B": (2085.0, 1293.0), "E": (1.817, 0.026), "alpha": (0.348, 0.015), "beta": (0.366, 0.021)}


def epoch_points():
    df = pl.read_csv(DATA).sort("loss").head(-5)  # Epoch drops the 5 highest-loss points
    n = df["Model Size"].to_numpy()
    return n, df["Training FLOP"].to_numpy() / (6 * n), df["loss"].to_numpy()


def test_gradient_matches_finite_differences():
    n, d, loss = epoch_points()
    data = (np.log(n), np.log(d), np.log(loss))
    theta = np.array([6.0, 7.5, 0.6, 0.35, 0.37])
    _, grad = huber_objective(theta, *data, 1e-3)
    eps = 1e-6
    for i in range(5):
        step = np.zeros(5)
        step[i] = eps
        numeric = (huber_objective(theta + step, *data, 1e-3)[0] - huber_objective(theta - step, *data, 1e-3)[0]) / (2 * eps)
        assert grad[i] == pytest.approx(numeric, rel=1e-4, abs=1e-7)


def test_reproduces_epochs_published_fit():
    n, d, loss = epoch_points()
    fit = fit_chinchilla(n, d, loss, n_bootstrap=40)
    assert fit.n_points == 240
    for name, (value, se) in PUBLISHED.items():
        assert abs(fit.params[name] - value) < se, (name, fit.params[name], value)
        assert se / 3 < fit.stderr[name] < 3 * se, (name, fit.stderr[name], se)
    assert "alpha" in fit.report


def test_tied_exponents_recover_the_over_training_law():
    """alpha = beta (Gadre et al.'s L(C, M)): known E, A, B, eta on a ladder of 4 sizes x 6 token multiples,
    0.3% log-normal noise, recovered; beta is alpha itself, not a free fit."""
    truth = {"E": 1.9, "A": 300.0, "B": 900.0, "eta": 0.32}
    n, mult = np.meshgrid([1e7, 3e7, 8e7, 1.5e8], [0.25, 1, 2, 4, 8, 16])
    n, d = n.ravel(), (20 * n * mult).ravel()
    exact = truth["E"] + truth["A"] / n ** truth["eta"] + truth["B"] / d ** truth["eta"]
    loss = exact * np.exp(np.random.default_rng(0).normal(0, 0.003, n.size))
    fit = fit_chinchilla(n, d, loss, n_bootstrap=0, n_starts=10, tied=True)
    assert fit.params["beta"] == fit.params["alpha"]
    assert fit.params["alpha"] == pytest.approx(truth["eta"], rel=0.1)
    assert fit.params["E"] == pytest.approx(truth["E"], rel=0.03)
    big = truth["E"] + truth["A"] / 7e9 ** truth["eta"] + truth["B"] / 1.4e11 ** truth["eta"]  # a 7B model, 50x beyond
    pred = fit.params["E"] + fit.params["A"] / 7e9 ** fit.params["alpha"] + fit.params["B"] / 1.4e11 ** fit.params["beta"]
    assert pred == pytest.approx(big, rel=0.01)
    refit = fit_chinchilla(n, d, loss, start=fit.params, tied=True)  # a bootstrap refit from the fit stays tied
    assert refit.params["beta"] == refit.params["alpha"] == pytest.approx(fit.params["alpha"], rel=1e-4)


@pytest.mark.filterwarnings("error")  # the default sweep's refits printed numpy's "divide by zero encountered in log"
def test_a_refit_starts_from_a_term_that_underflowed_to_zero_without_a_warning():
    """A full fit can drive a term to nothing (A = exp(a) underflows to 0.0); its refits start from there."""
    n, d, loss = epoch_points()
    start = fit_chinchilla(n, d, loss, n_bootstrap=0).params | {"B": 0.0}
    refit = fit_chinchilla(n, d, loss, n_bootstrap=0, start=start)
    assert np.isfinite(refit.objective) and refit.params["B"] >= 0.0
