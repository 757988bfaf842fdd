import numpy as np
import polars as pl
import pytest

from lmforecast.flp import fit_flp, fit_power_law, power_law

CFG = {"metric": "acc", "shots": 0, "prompt": None, "emerged_margin": 0.05, "holdout": "largest_compute"}


def test_power_law_recovers_known_parameters_with_standard_errors():
    rng = np.random.default_rng(0)
    compute = np.geomspace(1e15, 1e19, 12)
    truth = {"A": 2.0, "alpha": 0.3, "E": 1.7}
    c0 = float(np.exp(np.mean(np.log(compute))))
    loss = power_law(compute / c0, **truth) * (1 + rng.normal(0, 0.002, compute.size))
    result, fitted_c0 = fit_power_law(compute, loss)
    assert fitted_c0 == pytest.approx(c0)
    for name, value in truth.items():
        p = result.params[name]
        assert p.stderr is not None and 0 < p.stderr < 0.5 * value
        assert abs(p.value - value) < 4 * p.stderr + 0.02 * value, name


def synthetic_tables():
    """A family of 5 runs whose loss follows a power law in compute and whose score is linear in loss."""
    rows_ck, rows_dl, rows_ts, runs = [], [], [], []
    for i, flops_final in enumerate(np.geomspace(1e12, 1e14, 5)):
        run = f"r{i}"
        runs.append({"run": run, "mixture": "m", "objective": "clm"})
        for frac in (0.25, 0.5, 0.75, 1.0):
            step, flops = int(100 * frac), float(flops_final * frac)
            loss = 2.0 + 3.0 * (flops / 1e13) ** -0.25
            rows_ck.append({"run": run, "step": step, "flops": flops})
            rows_dl += [{"run": run, "step": step, "domain": d, "loss": loss} for d in ("a", "b")]
            rows_ts.append({"run": run, "step": step, "task": "t", "prompt": "p", "shots": 0, "metric": "acc",
                            "value": 1.2 - 0.15 * loss, "chance": 0.25})
    return pl.DataFrame(runs), pl.DataFrame(rows_ck), pl.DataFrame(rows_dl), pl.DataFrame(rows_ts)


def test_chain_predicts_the_held_out_run():
    params, preds, reports = fit_flp(*synthetic_tables(), CFG)
    flp = preds.filter(pl.col("predictor") == "flp").row(0, named=True)
    assert flp["run"] == "r4"  # the largest compute is held out
    assert flp["score_pred"] == pytest.approx(flp["score_actual"], abs=1e-3)
    # noise-free data: the interval is (nearly) a point, so allow for the last digits
    assert flp["score_lo"] - 1e-9 <= flp["score_actual"] <= flp["score_hi"] + 1e-9
    assert set(params["stage"]) == {"loss", "score", "direct"}
    assert params.filter(pl.col("param") == "alpha")["value"][0] == pytest.approx(0.25, abs=0.01)
    assert "stage 1" in reports[0]
    assert preds.filter(pl.col("predictor") == "direct").height == 1


def test_family_with_too_few_runs_is_reported_not_fitted():
    runs, ck, dl, ts = synthetic_tables()
    keep = pl.col("run").is_in(["r0", "r1", "r2"])
    params, preds, reports = fit_flp(runs.filter(keep), ck.filter(keep), dl.filter(keep), ts.filter(keep), CFG)
    assert params.height == 0 and preds.height == 0
    assert "need at least 4" in reports[0]


def test_power_law_intervals_cover_the_truth_at_about_the_nominal_rate():
    """95% intervals (lmfit SE x t quantile) over 100 noisy draws from known parameters."""
    from scipy.stats import t

    truth = {"A": 2.0, "alpha": 0.3, "E": 1.7}
    compute = np.geomspace(1e15, 1e19, 12)
    c0 = float(np.exp(np.mean(np.log(compute))))
    hits = {k: 0 for k in truth}
    repeats = 100
    for r in range(repeats):
        loss = power_law(compute / c0, **truth) + np.random.default_rng(100 + r).normal(0, 0.01, compute.size)
        result, _ = fit_power_law(compute, loss)
        q = t.ppf(0.975, result.nfree)
        for name, value in truth.items():
            p = result.params[name]
            hits[name] += abs(p.value - value) <= q * p.stderr
    for name, h in hits.items():
        assert 0.88 <= h / repeats <= 0.99, (name, h / repeats)
