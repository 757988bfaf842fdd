"""Errors in variables for the ladder's step 2 (fit.scaling.ladder.errors_in_variables)."""

import numpy as np
import polars as pl
import pytest
from test_scaling import CFG, ladder_tables

from lmforecast.fits.scaling import ScalingSettings
from lmforecast.fits.scaling.backtest import backtest
from lmforecast.fits.scaling.curves import fit_sigmoid, fit_sigmoid_odr, sigmoid
from lmforecast.settings import ConfigError

TRUTH = {"a": 0.6, "k": -4.0, "L0": 2.5, "b": 0.25}


def test_odr_recovers_the_sigmoid_that_a_noisy_feature_flattens_for_least_squares():
    """A feature measured with noise (sd 0.25) flattens the least-squares curve (regression dilution); orthogonal
    distance regression given the two noise scales recovers the curve."""
    rng = np.random.default_rng(0)
    true_x = rng.uniform(1.5, 3.5, 2000)
    x, y = true_x + rng.normal(0, 0.25, true_x.size), sigmoid(true_x, **TRUTH) + rng.normal(0, 0.01, true_x.size)
    ols = fit_sigmoid(x, y, start={"k": -4.0, "L0": 2.5})
    odr = fit_sigmoid_odr(x, y, 0.25, 0.01, start=ols)
    assert abs(ols.params["k"].value - TRUTH["k"]) > 0.08 * abs(TRUTH["k"])  # flattened
    assert abs(ols.params["a"].value - TRUTH["a"]) > 0.01 and abs(ols.params["b"].value - TRUTH["b"]) > 0.01
    assert odr.values["k"] == pytest.approx(TRUTH["k"], rel=0.06)
    for name, tol in (("a", 0.005), ("b", 0.005), ("L0", 0.015)):
        assert odr.values[name] == pytest.approx(TRUTH[name], abs=tol), name
    assert odr.values["b"] >= 0 and odr.values["a"] + odr.values["b"] <= 1  # an accuracy, as fit_sigmoid's


def test_ladder_errors_in_variables_fits_step2_by_odr_with_step1s_scatter():
    """On a ladder whose task loss is noisy, the setting fits step 2 by ODR (another curve than least squares),
    with sx the robust scatter of step 1's residuals and sy least squares' residual scatter, saved as rows."""
    base = {**CFG, "predictors": ["ladder"], "bootstrap": 0}
    tables = ladder_tables(noise=0.005)
    rng = np.random.default_rng(1)
    scores = tables["task_scores"]
    noise = np.where(scores["metric"] == "bits_per_byte", rng.normal(0, 0.01, scores.height), 0.0)
    tables = tables | {"task_scores": scores.with_columns(pl.col("value") + noise)}
    _, plain, _ = backtest(tables, ScalingSettings.from_dict(base))
    params, odr, _ = backtest(tables, ScalingSettings.from_dict(base | {"ladder": {"errors_in_variables": True}}))
    step2 = dict(params.filter(pl.col("stage") == "score").select("param", "value").iter_rows())
    assert 0 < step2["sx"] < 0.05 and 0 < step2["sy"] < 0.05, step2
    assert step2["b"] >= 0 and step2["a"] + step2["b"] <= 1 + 1e-12
    assert odr["score_pred"][0] != plain["score_pred"][0]
    assert odr["score_pred"][0] == pytest.approx(odr["score_actual"][0], abs=0.03)
    assert params.filter(pl.col("stderr").is_nan())["stderr_note"].is_not_null().all()


def test_two_fits_of_step_2_together_are_a_config_error():
    cfg = {"metric": "acc", "shots": 0, "emerged_margin": 0.05, "holdout": "largest_compute", "predictors": ["ladder"]}
    with pytest.raises(ConfigError, match="errors_in_variables and token_multiple are different fits of step 2"):
        ScalingSettings.from_dict(cfg | {"bootstrap": 0, "ladder": {"errors_in_variables": True, "token_multiple": True}})
    with pytest.raises(ConfigError, match="token_multiple and shared_shape are different fits of step 2; expected at most"):
        ScalingSettings.from_dict(cfg | {"bootstrap": 0, "ladder": {"token_multiple": True, "shared_shape": True}})
