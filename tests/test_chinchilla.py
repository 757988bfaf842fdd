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
