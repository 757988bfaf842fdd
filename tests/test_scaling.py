import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from scipy.stats import t

from lmforecast.fits.scaling import ScalingSettings
from lmforecast.fits.scaling.backtest import FORECAST_COLUMNS, backtest, forecast, resample_runs
from lmforecast.fits.scaling.curves import fit_power_law, fit_sigmoid, fit_sigmoid_multiple, power_law, sigmoid
from lmforecast.fits.scaling.evaluation import (
    breakdown,
    forecast_ranking,
    mean_interval,
    ranking_backtest,
    summary,
    versus_best,
)

PREDICTORS = ["direct", "flp", "chinchilla", "ladder", "flpm"]
CFG = {
    "metric": "acc",
    "shots": 0,
    "prompt": None,
    "emerged_margin": 0.05,
    "holdout": "largest_compute",
    "predictors": PREDICTORS,
    "bootstrap": 20,
}
TRUTH = {"A": 2.0, "alpha": 0.3, "E": 1.7}


def test_power_law_recovers_known_parameters_with_standard_errors():
    rng = np.random.default_rng(0)
    compute = np.geomspace(1e15, 1e19, 12)
    c0 = float(np.exp(np.mean(np.log(compute))))
    loss = power_law(compute / c0, **TRUTH) * np.exp(rng.normal(0, 0.0005, compute.size))
    result, fitted_c0 = fit_power_law(compute, loss)
    assert fitted_c0 == pytest.approx(c0)
    for name, value in TRUTH.items():
        p = result.params[name]
        assert p.stderr is not None and 0 < p.stderr < 0.5 * value
        assert abs(p.value - value) < 4 * p.stderr + 0.02 * value, name


def test_power_law_intervals_cover_the_truth_at_about_the_nominal_rate():
    """95% intervals (lmfit's Jacobian SE x t quantile) over 100 noisy draws from known parameters.

    Log-noise below the Huber delta: there the Huber fit is least squares and its SEs are exact. Each fit starts at
    the truth: the standard errors are under test here, the grid of starts in the test above.
    """
    compute = np.geomspace(1e15, 1e19, 12)
    c0 = float(np.exp(np.mean(np.log(compute))))
    hits = {k: 0 for k in TRUTH}
    repeats = 100
    for r in range(repeats):
        noise = np.random.default_rng(100 + r).normal(0, 0.0003, compute.size)
        result, _ = fit_power_law(compute, power_law(compute / c0, **TRUTH) * np.exp(noise), start=TRUTH)
        q = t.ppf(0.975, result.nfree)
        for name, value in TRUTH.items():
            p = result.params[name]
            hits[name] += abs(p.value - value) <= q * p.stderr
    for name, h in hits.items():
        assert 0.88 <= h / repeats <= 0.99, (name, h / repeats)


def test_huber_fit_ignores_an_outlier_that_moves_least_squares():
    compute = np.geomspace(1e15, 1e19, 10)
    c0 = float(np.exp(np.mean(np.log(compute))))
    loss = power_law(compute / c0, **TRUTH)
    loss[3] *= 1.3  # one diverged run
    result, _ = fit_power_law(compute, loss)
    assert result.params["alpha"].value == pytest.approx(TRUTH["alpha"], rel=0.02)


def test_sigmoid_recovers_the_ladder_curve():
    x = np.linspace(0.5, 2.0, 30)
    truth = {"a": 0.6, "k": -6.0, "L0": 1.2, "b": 0.25}
    result = fit_sigmoid(x, sigmoid(x, **truth))
    for name, value in truth.items():
        assert result.params[name].value == pytest.approx(value, rel=1e-3), name


def test_sigmoid_is_an_accuracy_when_extrapolated():
    """Fitted on points that rise ever faster as the loss falls (the sigmoid's upper half never seen), the
    curve stays within [0, 1] beyond them: a + b <= 1 (unbounded it reached 1.26 at loss 0)."""
    x = np.linspace(1.0, 2.0, 12)  # task loss (bits per byte): accuracy rises as it falls
    y = 0.25 + 0.5 * np.exp(-4 * (x - 1))
    result = fit_sigmoid(x, y)
    a, b = result.params["a"].value, result.params["b"].value
    assert 0.0 <= b and a + b <= 1.0 + 1e-12
    far = result.eval(x=np.array([-5.0, 0.0, 0.5]))
    assert np.all((far >= 0.0) & (far <= 1.0 + 1e-12)), far


def synthetic_tables(n_runs=6, noise=0.0, seed=0):
    """One family whose loss follows known scaling laws in compute and (N, D), domain losses a fixed
    offset of it, task loss proportional to it, and accuracy linear in it (above chance)."""
    rng = np.random.default_rng(seed)
    runs, ck, dl, ts = [], [], [], []
    for i in range(n_runs):
        run, n = f"r{i}", int(2e4 * 2**i)
        runs.append({"run": run, "mixture": "m", "objective": "clm", "lr": 0.003, "n_params": n})
        for frac in (0.25, 0.5, 0.75, 1.0):
            tokens = int(20 * n * frac)
            flops = 6.0 * n * tokens
            loss = power_law(flops / 1e12, 1.0, 0.2, 2.0) * np.exp(rng.normal(0, noise))
            step = int(100 * frac)
            ck.append({"run": run, "step": step, "tokens": tokens, "flops": flops})
            dl += [{"run": run, "step": step, "domain": d, "loss": loss + off} for d, off in (("a", -0.1), ("b", 0.1))]
            for metric, value in (("acc", 1.0375 - 0.175 * loss), ("bits_per_byte", 0.5 * loss)):
                ts.append(
                    {
                        "run": run,
                        "step": step,
                        "task": "t",
                        "prompt": "p",
                        "shots": 0,
                        "metric": metric,
                        "value": value,
                        "chance": 0.25,
                        "n": 400,
                    }
                )
    return {
        "runs": pl.DataFrame(runs),
        "checkpoints": pl.DataFrame(ck),
        "domain_losses": pl.DataFrame(dl),
        "task_scores": pl.DataFrame(ts),
    }


def test_every_predictor_predicts_the_held_out_run_of_a_noise_free_family():
    params, preds, report = backtest(synthetic_tables(), ScalingSettings.from_dict(CFG))
    assert set(preds["predictor"]) == set(PREDICTORS), report
    assert set(preds["run"]) == {"r5"}  # the largest compute is held out
    by = {r["predictor"]: r for r in preds.iter_rows(named=True)}
    # chains whose stages hold exactly here are (near) exact; FLP-M's network and the log-linear baseline are not
    for name in ("flp", "chinchilla"):
        assert by[name]["score_pred"] == pytest.approx(by[name]["score_actual"], abs=2e-3), name
    assert by["flp"]["loss_pred"] == pytest.approx(by["flp"]["loss_actual"], rel=1e-4)
    assert all(r["n_boot"] > 0 for r in by.values())
    # the actual score's binomial sampling error over the task's 400 examples, and the report's floor from it
    actual = by["flp"]["score_actual"]
    assert preds["score_actual_se"].to_list() == pytest.approx([math.sqrt(actual * (1 - actual) / 400)] * preds.height)
    floor = summary(preds)["floor_rel_error"].to_list()
    assert floor == pytest.approx([math.sqrt(2 / math.pi) * by["flp"]["score_actual_se"] / actual] * len(PREDICTORS))
    stage1 = params.filter((pl.col("predictor") == "flp") & (pl.col("stage") == "loss"))
    assert set(stage1["param"]) == {"A", "alpha", "E", "C0"}
    assert stage1.filter(pl.col("param") == "alpha")["value"][0] == pytest.approx(0.2, abs=1e-3)
    assert stage1.filter(pl.col("param") != "C0")["stderr_boot"].is_not_nan().all()


def test_breakdown_gives_each_target_and_task_its_mean_error_and_coverage_per_predictor():
    preds = pl.DataFrame(
        {
            "predictor": ["a", "a", "a", "b", "b", "b"],
            "run": ["7B", "7B", "13B", "7B", "7B", "13B"],
            "task": ["x", "y", "x", "x", "y", "x"],
            "abs_error": [0.01, 0.03, 0.02, 0.05, 0.01, 0.04],
            "rel_error": [0.02, 0.06, 0.04, 0.10, 0.02, 0.08],
            "score_actual_se": [math.nan] * 6,
            "score_actual": [0.5] * 6,
            "covered": [True, False, True, True, True, None],  # None: no interval (no refits)
        }
    )
    runs = breakdown(preds, "run")
    assert runs.columns == ["run", "a", "b"]  # the summary's order: a errs least
    assert runs.rows() == [("13B", "4.0% (1/1)", "8.0% (0/0)"), ("7B", "4.0% (1/2)", "6.0% (2/2)")]
    assert breakdown(preds, "task").rows() == [("x", "3.0% (2/2)", "9.0% (1/1)"), ("y", "6.0% (0/1)", "2.0% (1/1)")]


def test_the_mean_errors_interval_counts_a_target_models_tasks_as_one_draw():
    """Two held-out runs x 10 tasks, where the error is the run's alone (0.02 on one target, 0.06 on the other): 20
    pairs, but two independent draws of a target. The two-way bootstrap's interval spans both runs' errors; one over
    the 20 pairs as if independent would give about 0.04 +- 0.009."""
    tasks = [f"t{i}" for i in range(10)]
    preds = pl.DataFrame(
        {
            "predictor": ["a"] * 20 + ["b"],
            "run": ["7B"] * 10 + ["13B"] * 10 + ["7B"],
            "task": tasks * 2 + ["t0"],
            "rel_error": [0.02] * 10 + [0.06] * 10 + [0.05],
        }
    )
    bounds = {r["predictor"]: (r["rel_error_lo"], r["rel_error_hi"]) for r in mean_interval(preds).iter_rows(named=True)}
    assert bounds["a"] == pytest.approx((0.02, 0.06))
    assert bounds["b"] == pytest.approx((0.05, 0.05))  # one pair: every draw that has it gives its error
    # the coverage's interval, the same way: covered on the 7B target's 10 tasks, missed on the 13B one's
    covered = mean_interval(preds.with_columns(covered=pl.col("run") == "7B"), "covered").row(0, named=True)
    assert (covered["covered_lo"], covered["covered_hi"]) == (0.0, 1.0)
    assert mean_interval(preds).equals(mean_interval(preds))  # seeded: the same draws every time


def test_a_predictor_worse_on_every_pair_is_told_apart_though_the_intervals_overlap():
    """b errs 0.01 more than a on each of a's 20 pairs: alone, each one's interval spans the two runs' errors and
    they overlap; paired on the same draws, the difference is 0.01 in every draw. c predicted one run only: it is
    compared with a on that run's 10 pairs."""
    tasks = [f"t{i}" for i in range(10)]
    a = [0.02] * 10 + [0.06] * 10
    preds = pl.DataFrame(
        {
            "predictor": ["a"] * 20 + ["b"] * 20 + ["c"] * 10,
            "run": (["7B"] * 10 + ["13B"] * 10) * 2 + ["7B"] * 10,
            "task": tasks * 5,
            "rel_error": a + [e + 0.01 for e in a] + [0.03] * 10,
        }
    )
    bounds = mean_interval(preds).filter(pl.col("predictor") != "c")
    assert bounds["rel_error_lo"].to_list() == pytest.approx([0.02, 0.03])
    assert bounds["rel_error_hi"].to_list() == pytest.approx([0.06, 0.07])
    versus = {r["predictor"]: r for r in versus_best(preds).iter_rows(named=True)}
    assert versus["b"]["versus"] == "a" and versus["b"]["pairs"] == 20
    assert (versus["b"]["rel_error_diff"], versus["b"]["diff_lo"], versus["b"]["diff_hi"]) == pytest.approx((0.01,) * 3)
    assert (versus["c"]["pairs"], versus["c"]["rel_error_diff"]) == (10, pytest.approx(0.01))  # 0.03 against a's 0.02


def test_bootstrap_intervals_cover_the_noise_free_score_mostly():
    """The refits' interval (interval: bootstrap) is for the expected score (parameter uncertainty of both stages),
    so it is checked against the noise-free score of the held-out run, over 10 noisy sweeps."""
    truth = 1.0375 - 0.175 * power_law(4.9152e13 / 1e12, 1.0, 0.2, 2.0)
    hits = 0
    for seed in range(10):
        _, preds, _ = backtest(
            synthetic_tables(noise=0.003, seed=seed),
            ScalingSettings.from_dict({**CFG, "predictors": ["flp"], "bootstrap": 30, "interval": "bootstrap"}),
        )
        row = preds.row(0, named=True)
        assert row["score_lo"] < row["score_pred"] < row["score_hi"]
        hits += row["score_lo"] <= truth <= row["score_hi"]
    assert hits >= 8, hits


def test_configured_holdout_and_determinism_in_one_or_two_processes():
    cfg = {**CFG, "predictors": ["flp", "direct"], "holdout": ["r4", "r5"]}
    a = backtest(synthetic_tables(noise=0.003), ScalingSettings.from_dict(cfg))
    b = backtest(
        synthetic_tables(noise=0.003), ScalingSettings.from_dict(cfg), workers=2
    )  # one process per predictor: same tables
    assert set(a[1]["run"]) == {"r4", "r5"}
    assert a[0].equals(b[0]) and a[1].equals(b[1]) and a[2] == b[2]


def test_resampled_runs_keep_whole_runs_under_distinct_names():
    train = synthetic_tables()["checkpoints"].with_columns(pl.lit(1.0).alias("x"))
    sample = resample_runs(train, np.random.default_rng(3))
    assert sample.height == train.height
    assert sample.group_by("run").len()["len"].to_list() == [4] * 6


def test_family_with_too_few_runs_is_reported_not_fitted():
    tables = synthetic_tables(n_runs=3)
    params, preds, report = backtest(tables, ScalingSettings.from_dict(CFG))
    assert params.height == 0 and preds.height == 0
    assert "need at least 3 to fit and 1 to predict" in report[0]


# Fits the ill-conditioned sigmoid 20 times in a fresh process, shifting the heap between fits;
# prints each fit's parameters and standard errors, exactly (hex).
_REFIT_SCRIPT = """
import json, sys
import numpy as np
import lmforecast.fits.scaling.backtest  # the imports of a `lmforecast fit scaling` job: they shape the process's memory
from lmforecast.fits.scaling import curves
data = json.load(open(sys.argv[1]))
shift = []
for k in range(20):
    shift.append(np.empty(3 * k + 1))
    r = curves.fit_sigmoid(np.array(data["x"]), np.array(data["y"]))
    print([(p.value.hex(), repr(p.stderr)) for p in r.params.values()])
"""


def test_ill_conditioned_sigmoid_fit_is_the_same_in_every_process_and_heap_state():
    # lmfit's default (MINPACK leastsq) gave one of two results on this data depending on memory
    # layout, which broke the workflow's run-twice determinism; the fits use least_squares
    data = Path(__file__).parent / "data" / "sigmoid_near_chance.json"
    results = set()
    for perturb in ("0", "77", "165"):
        env = {**os.environ, "MALLOC_PERTURB_": perturb}
        out = subprocess.run(
            [sys.executable, "-c", _REFIT_SCRIPT, str(data)], env=env, check=True, capture_output=True, text=True
        ).stdout
        results |= set(out.splitlines())
    assert len(results) == 1, results


LADDER_TRUTH = {"E": 0.6, "A": 40.0, "alpha": 0.3, "B": 60.0, "beta": 0.28}  # task bits per byte, L(N, D)
SIGMOID_TRUTH = {"a": 0.75, "k": -5.0, "L0": 1.0, "b": 0.25}  # a + b = 1: a perfect model is always right


def ladder_tables(noise=0.0, seed=0, g=0.0, run_sd=0.0):
    """A ladder (4 sizes x 3 token multipliers, 10 checkpoints each) whose task loss is L(N, D) with
    LADDER_TRUTH at every checkpoint and whose accuracy is the sigmoid SIGMOID_TRUTH of it (with `g`, of the
    effective loss L - g log M, M = D/N the checkpoint's token multiple); with `run_sd`, each run's task loss
    misses the law by its own factor exp(N(0, run_sd)) (a seed, a data order)."""
    rng = np.random.default_rng(seed)
    runs, ck, dl, ts = [], [], [], []
    for n in (1e7, 2e7, 4e7, 8e7):
        for mult in (10, 20, 40):
            run = f"n{int(n / 1e6)}M-x{mult}"
            runs.append({"run": run, "mixture": "m", "objective": "clm", "lr": 0.003, "n_params": int(n)})
            miss = np.exp(rng.normal(0, run_sd)) if run_sd else 1.0
            for step in range(10, 101, 10):
                tokens = int(mult * n * step / 100)
                t = LADDER_TRUTH
                bpb = (t["E"] + t["A"] / n ** t["alpha"] + t["B"] / tokens ** t["beta"]) * miss
                acc = sigmoid(bpb - g * np.log(tokens / n), **SIGMOID_TRUTH) + rng.normal(0, noise)
                ck.append({"run": run, "step": step, "tokens": tokens, "flops": 6.0 * n * tokens})
                dl.append({"run": run, "step": step, "domain": "a", "loss": 2 * bpb})
                for metric, value in (("acc", acc), ("bits_per_byte", bpb)):
                    row = {"run": run, "step": step, "task": "t", "prompt": "p", "shots": 0, "metric": metric}
                    ts.append(row | {"value": value, "chance": 0.25, "n": 400})
    frames = {"runs": runs, "checkpoints": ck, "domain_losses": dl, "task_scores": ts}
    return {name: pl.DataFrame(rows) for name, rows in frames.items()}


PAPER_LADDER = {"step1": "params_tokens", "feature": "task_loss", "anchor": True, "skip_fraction": 0.1, "moving_average": 1}


@pytest.mark.filterwarnings("error")  # no warning may leak from a fit
def test_ladder_on_params_and_tokens_with_anchor_recovers_known_parameters():
    cfg = ScalingSettings.from_dict({**CFG, "predictors": ["ladder"], "bootstrap": 5, "ladder": PAPER_LADDER})
    params, preds, report = backtest(ladder_tables(), cfg)
    row = preds.row(0, named=True)
    assert row["run"] == "n80M-x40", report
    # the intermediate prediction is saved beside the score
    assert row["feature"] == "bits_per_byte"
    assert row["feature_pred"] == pytest.approx(row["feature_actual"], rel=1e-3)
    assert row["score_pred"] == pytest.approx(row["score_actual"], abs=2e-3)
    fitted = dict(params.filter(pl.col("stage") == "task_loss").select("param", "value").iter_rows())
    for name in ("E", "alpha", "beta"):
        assert fitted[name] == pytest.approx(LADDER_TRUTH[name], rel=0.05), name
    step2 = dict(params.filter(pl.col("stage") == "score").select("param", "value").iter_rows())
    for name, value in SIGMOID_TRUTH.items():
        assert step2[name] == pytest.approx(value, rel=0.02, abs=0.02), name
    # a standard error that is missing says why
    assert params.filter(pl.col("stderr").is_nan())["stderr_note"].is_not_null().all()
    # A and B's bootstrap spread is reported in log space (A's was 9.6e7 on a real ladder)
    assert fitted["log_A"] == pytest.approx(np.log(fitted["A"])) and fitted["log_B"] == pytest.approx(np.log(fitted["B"]))
    boot = dict(params.filter(pl.col("stage") == "task_loss").select("param", "stderr_boot").iter_rows())
    assert np.isnan(boot["A"]) and np.isnan(boot["B"]) and np.isfinite(boot["log_A"]) and boot["log_A"] < 1.0, boot


PLANNED = [  # a twin of the held-out n80M-x40 run, and a rung above the ladder
    {"name": "twin", "n_params": 8e7, "tokens": 40 * 8e7, "mixture": "m", "lr": 0.003},
    {"name": "n160M-x20", "n_params": 1.6e8, "tokens": 20 * 1.6e8, "mixture": "m", "lr": 0.003},
]
EVERY = ["direct", "flat", "flp", "chinchilla", "ladder", "flpm", "ensemble"]


def test_a_planned_run_is_forecast_by_the_back_tests_fits_which_it_leaves_as_they_were():
    """fit.scaling.forecast: a run not trained is predicted by the fits that predict the held-out run. A twin of the
    held-out run gets its predictions; adding forecasts changes no back-test row or parameter (their intervals'
    scatter draws come first, as before); on a ladder drawn from known laws, the paper's chain forecasts the new
    rung's known score."""
    base = {**CFG, "predictors": EVERY, "bootstrap": 5, "ladder": PAPER_LADDER}
    tables = ladder_tables(noise=0.01)
    params, preds, forecasts, report = forecast(tables, ScalingSettings.from_dict(base | {"forecast": PLANNED}))
    alone = backtest(tables, ScalingSettings.from_dict(base))
    assert alone[0].equals(params) and alone[1].equals(preds)
    assert "forecasting twin, n160M-x20" in "\n".join(report)
    assert forecasts.columns == list(FORECAST_COLUMNS) and forecasts.height == 2 * len(EVERY)
    twin = forecasts.filter(pl.col("run") == "twin").sort("predictor")
    held = preds.sort("predictor")
    assert twin["predictor"].to_list() == held["predictor"].to_list()
    np.testing.assert_array_equal(twin["score_pred"], held["score_pred"])
    np.testing.assert_array_equal(twin["loss_pred"].fill_nan(None), held["loss_pred"].fill_nan(None))
    assert (forecasts["n_boot"] == 5).all() and (forecasts["score_lo"] <= forecasts["score_hi"]).all()

    cfg = ScalingSettings.from_dict(base | {"predictors": ["ladder"], "forecast": PLANNED})
    new = forecast(ladder_tables(), cfg)[2].filter(pl.col("run") == "n160M-x20").row(0, named=True)
    t = LADDER_TRUTH
    bpb = t["E"] + t["A"] / 1.6e8 ** t["alpha"] + t["B"] / 3.2e9 ** t["beta"]
    assert new["feature_pred"] == pytest.approx(bpb, rel=1e-3)
    assert new["score_pred"] == pytest.approx(sigmoid(bpb, **SIGMOID_TRUTH), abs=2e-3)
    assert new["flops"] == 6 * 1.6e8 * 3.2e9 and new["n_params"] == 1.6e8 and new["tokens"] == 3.2e9


def test_planned_runs_of_several_recipes_at_one_scale_are_ranked_by_their_paired_draws():
    """Three recipes whose accuracy is known at every loss, each planned at a size above their ladders: each
    forecast's draws (score_draws, one per resample index, NaN where refused) give its interval, and the ranking puts
    the recipe known to score highest there first, p_first the share of paired resamples that agree."""
    n, d = 6.4e8, 20 * 6.4e8
    loss = 1.8 + 40.0 * (6 * n * d) ** -0.08
    truth = {r: sigmoid(loss, SHARED_SHAPE["headroom"] * (1 - b), SHARED_SHAPE["k"], L0, b) for r, (b, L0) in RECIPES.items()}
    planned = [{"name": f"{r}-640M", "n_params": n, "tokens": d, "mixture": r, "lr": 0.003} for r in RECIPES]
    cfg = {**CFG, "predictors": ["ladder"], "bootstrap": 20, "ladder": {"feature": "loss", "shared_shape": True}}
    forecasts = forecast(recipes_tables(), ScalingSettings.from_dict(cfg | {"forecast": planned}))[2]
    for row in forecasts.iter_rows(named=True):
        draws = np.array(row["score_draws"])
        assert len(draws) == 20 and np.isfinite(draws).sum() == row["n_boot"]
        lo, hi = np.nanquantile(draws, [0.025, 0.975])
        assert (lo, hi) == pytest.approx((row["score_lo"], row["score_hi"]))
        assert row["score_pred"] == pytest.approx(truth[row["family"][0]], abs=0.02)
    ranking = forecast_ranking(forecasts)
    assert ranking["run"].to_list() == ["a-640M", "b-640M", "c-640M"]  # by forecast: a, then b and c (0.73, 0.72)
    assert ranking["p_first"].sum() == pytest.approx(1.0) and ranking["p_first"][0] >= 0.9
    assert (ranking["resamples"] > 10).all()


def test_the_back_tests_rankings_are_scored_against_the_actual_winners():
    """ranking_backtest, a known answer: two families' held-out runs at one scale on two tasks, one run alone at its
    scale (no cell). On t the point forecasts and 3 of 4 paired draws put A first, and B won: p_winner 0.25, Brier
    0.75^2 + 0.75^2; on u every draw put A first, and A won: Brier 0."""
    rows = []
    for task, actual_a, actual_b in (("t", 0.55, 0.58), ("u", 0.60, 0.50)):
        draws_a, draws_b = ([0.6, 0.6, 0.6, 0.4], [0.5, 0.5, 0.5, 0.7]) if task == "t" else ([0.6] * 4, [0.5] * 4)
        rows += [
            ("p", task, 1e9, 2e10, "a-1B", "A", 0.6, draws_a, actual_a),
            ("p", task, 1e9, 2e10, "b-1B", "B", 0.5, draws_b, actual_b),
            ("p", task, 1e9, 4e10, "c-1B", "C", 0.9, [0.9] * 4, 0.4),  # alone at its scale
        ]
    columns = ["predictor", "task", "n_params", "tokens", "run", "family", "score_pred", "score_draws", "score_actual"]
    summary_, reliability = ranking_backtest(pl.DataFrame(rows, schema=columns, orient="row"))
    row = summary_.row(0, named=True)
    assert (row["cells"], row["runs_per_cell"], row["with_draws"]) == (2, 2.0, 2)
    assert (row["point_right"], row["chance"], row["brier_chance"]) == (0.5, 0.5, 0.5)
    assert row["p_winner"] == pytest.approx((0.25 + 1.0) / 2)
    assert row["brier"] == pytest.approx((0.75**2 + 0.75**2 + 0.0) / 2)
    assert row["brier_gain"] == pytest.approx(row["brier_chance"] - row["brier"])
    assert row["brier_gain_lo"] <= row["brier_gain"] <= row["brier_gain_hi"]
    bins = {r["p_first_bin"]: (r["runs"], r["share_won"]) for r in reliability.iter_rows(named=True)}
    assert bins == {"0-0.2": (1, 0.0), "0.2-0.4": (1, 1.0), "0.6-0.8": (1, 0.0), "0.8-1": (1, 1.0)}


def test_a_forecast_outside_the_tables_families_or_compute_convention_is_an_error_before_any_fit():
    tables = ladder_tables()
    cfg = {**CFG, "predictors": ["direct"], "bootstrap": 0}

    def planned(**change):
        return ScalingSettings.from_dict(cfg | {"forecast": [PLANNED[1] | change]})

    with pytest.raises(ValueError, match=r"forecast\[0\] \(n160M-x20\): family 'c/clm/lr=0.003' has no runs.*m/clm/lr=0.003"):
        forecast(tables, planned(mixture="c"))
    with pytest.raises(ValueError, match=r"forecast\[0\] \(n10M-x10\): the tables have a run of that name"):
        forecast(tables, planned(name="n10M-x10"))
    # runs whose compute is not 6 N D (e.g. FLOPs per token from another count of parameters): the planned run's too
    tables["checkpoints"] = tables["checkpoints"].with_columns(pl.col("flops") * 1.5)
    with pytest.raises(ValueError, match=r"no flops given.*flops / 6 N D: 1\.5\); expected flops"):
        forecast(tables, planned())
    given = forecast(tables, planned(flops=1.5 * 6 * 1.6e8 * 3.2e9))[2]
    assert given["flops"].to_list() == [1.5 * 6 * 1.6e8 * 3.2e9]


def test_the_fit_writes_the_forecasts_and_the_report_shows_them(tmp_path, monkeypatch):
    """`lmforecast fit scaling` on the mlfoundations example's import (its runs trained on RedPajama), forecasting
    the 6.9B model at 4x its tokens, not trained: scaling_forecasts.parquet, a table in scaling_report.txt after the
    back-test's, and the same table in the report's scaling section."""
    import json

    import yaml

    from lmforecast.cli import main as cli
    from lmforecast.fits.registry import registry
    from lmforecast.measure.imports import import_tables, write_tables

    root = Path(__file__).resolve().parents[1]
    monkeypatch.chdir(root)  # the example's paths are relative to the repository
    example = yaml.safe_load((root / "config" / "examples" / "mlfoundations-scaling.yaml").read_text())
    two = ("rpj", "rw")
    imported = example["import"] | {"runs": [r for r in example["import"]["runs"] if r["mixture"] in two]}
    ladder = imported["ladder"]
    imported["ladder"] = ladder | {"files": [f for f in ladder["files"] if f["run"].split("-")[0] in two]}
    write_tables(import_tables(imported), tmp_path / "tables")
    n, n_nonembed, tokens = 6889410560, 6682841088, 4 * 137788211200  # the import counts C = 6 N_nonembed D
    planned = [
        {"name": f"{m}-6.9B-x4", "n_params": n, "tokens": tokens, "mixture": m, "flops": 6.0 * n_nonembed * tokens} for m in two
    ]
    spec = example["fit"]["scaling"] | {
        "predictors": ["direct", "ladder", "ensemble"],
        "tasks": ["avg46", "piqa"],
        "holdout": [f"{m}-6.9B-x1" for m in two],
        "bootstrap": 4,
        "forecast": planned,
    }
    out = {"--tables": tmp_path / "tables", "--fits": tmp_path / "fits", "--report-dir": tmp_path / "report"}
    cli(["fit", "scaling", "--spec", json.dumps(spec), *[str(x) for kv in out.items() for x in kv]])
    forecasts = pl.read_parquet(tmp_path / "fits" / "scaling_forecasts.parquet")
    assert forecasts.height == 3 * 2 * 2 and set(forecasts["run"]) == {"rpj-6.9B-x4", "rw-6.9B-x4"}
    # more tokens, a lower predicted loss than the same family's 6.9B-x1 run
    x1 = pl.read_parquet(tmp_path / "fits" / "scaling_predictions.parquet").filter(pl.col("predictor") == "ladder")
    x4 = forecasts.filter(pl.col("predictor") == "ladder").join(x1, on=["family", "task"], suffix="_x1")
    assert x4.height == 4 and (x4["loss_pred"] < x4["loss_pred_x1"]).all()
    text = (tmp_path / "fits" / "scaling_report.txt").read_text()
    ladder = forecasts.filter((pl.col("predictor") == "ladder") & (pl.col("task") == "piqa")).row(0, named=True)
    cell = f"{round(ladder['score_pred'], 3)} [{round(ladder['score_lo'], 3)}, {round(ladder['score_hi'], 3)}]"
    assert text.index("per held-out task") < text.index("forecasts of the runs not trained") < text.index(cell)
    assert text.index(cell) < text.index("which one each predictor's forecast puts first")
    section = registry()["scaling"].section(tmp_path / "fits", tmp_path / "report")
    assert "Forecasts of the runs not trained" in section and cell in section and "p_first" in section
    # the held-out 6.9B-x1 runs share a scale: the back-test's own rankings, 2 tasks x 3 predictors
    assert text.index("per held-out task") < text.index("Where held-out runs of several families") < text.index("forecasts")
    assert "cells" in text and "The reliability of p_first" in text and "The reliability of p_first" in section


def test_ensemble_weights_the_exact_chain_by_the_back_test_inside_the_ladder():
    """On a ladder where the paper's chain is the law the data were drawn from and `direct`'s logit line is
    not, the back-test inside the ladder (the 80M rung held out of the training runs) gives the ladder chain
    the weight and the ensemble predicts the held-out run's known score, its interval around it."""
    cfg = {**CFG, "predictors": ["direct", "ladder", "ensemble"], "bootstrap": 5, "ladder": PAPER_LADDER}
    params, preds, report = backtest(ladder_tables(), ScalingSettings.from_dict(cfg))
    by = {r["predictor"]: r for r in preds.iter_rows(named=True)}
    truth = sigmoid(
        LADDER_TRUTH["E"] + LADDER_TRUTH["A"] / 8e7 ** LADDER_TRUTH["alpha"] + LADDER_TRUTH["B"] / 3.2e9 ** LADDER_TRUTH["beta"],
        **SIGMOID_TRUTH,
    )
    assert by["ensemble"]["score_actual"] == pytest.approx(truth)
    assert by["ensemble"]["score_pred"] == pytest.approx(truth, abs=2e-3), report
    assert abs(by["direct"]["score_pred"] - truth) > 10 * abs(by["ensemble"]["score_pred"] - truth)
    assert by["ensemble"]["covered"] and by["ensemble"]["n_boot"] == 5
    w = dict(
        params.filter((pl.col("predictor") == "ensemble") & (pl.col("stage") == "weight")).select("param", "value").iter_rows()
    )
    assert w["ladder"] > 0.99 and w["direct"] == pytest.approx(1 - w["ladder"]), w
    with pytest.raises(ValueError, match="ensemble combines the other predictors"):
        backtest(ladder_tables(), ScalingSettings.from_dict({**CFG, "predictors": ["ensemble"]}))


def test_flat_predicts_the_fitted_mean_and_the_ensemble_weights_it_where_a_task_does_not_scale():
    """`flat`, the null model: the mean of the training runs' final scores. Beside `direct`, the ensemble's back-test
    inside the ladder gives it the weight on a task that zigzags with scale (no trend: wsc-like) and none on one
    that rises with it."""
    tables = synthetic_tables()
    # per run r0..r5, at every step: a rise in r0..r3 that does not go on (r4 and r5 at r0..r3's mean)
    zigzag = [0.36, 0.44, 0.38, 0.46, 0.41, 0.41]
    rows = tables["task_scores"].filter((pl.col("metric") == "acc") & (pl.col("task") == "t"))
    w = rows.with_columns(
        pl.lit("w").alias("task"),
        pl.col("run").str.slice(1).cast(int).map_elements(lambda i: zigzag[i], return_dtype=pl.Float64).alias("value"),
    )
    tables["task_scores"] = pl.concat([tables["task_scores"], w])
    cfg = {**CFG, "predictors": ["direct", "flat", "ensemble"], "bootstrap": 40}
    params, preds, report = backtest(tables, ScalingSettings.from_dict(cfg))
    flat = preds.filter((pl.col("predictor") == "flat") & (pl.col("task") == "w"))
    assert flat["score_pred"][0] == pytest.approx(np.mean(zigzag[:5])) and flat["covered"][0], report
    weights = params.filter((pl.col("predictor") == "ensemble") & (pl.col("stage") == "weight"))
    w = {(r["task"], r["param"]): r["value"] for r in weights.iter_rows(named=True)}
    assert w[("w", "flat")] > 0.99 and w[("t", "flat")] < 0.1, w
    err = {r["predictor"]: r["abs_error"] for r in preds.filter(pl.col("task") == "w").iter_rows(named=True)}
    assert err["ensemble"] < 0.001 and err["direct"] > 0.03, err  # the trend fitted on r0..r4 would have gone on


def test_ladder_settings_smooth_skip_and_use_the_pretraining_loss():
    """moving_average and skip_fraction change step 2's points; feature: loss chains through the pre-training loss."""
    base = {**CFG, "predictors": ["ladder"], "bootstrap": 0}
    tables = ladder_tables(noise=0.01)
    n_points = {}
    for window, skip in ((1, 0.1), (1, 0.5), (3, 0.5)):
        cfg = ScalingSettings.from_dict(base | {"ladder": {"moving_average": window, "skip_fraction": skip}})
        params, _, _ = backtest(tables, cfg)
        score = params.filter((pl.col("stage") == "score") & (pl.col("param") == "k"))
        n_points[(window, skip)] = (score["n_points"][0], score["value"][0])
    # 11 training runs, and the anchor (auto: the score falls with the task loss)
    assert n_points[(1, 0.1)][0] == 11 * 9 + 1 and n_points[(1, 0.5)][0] == 11 * 5 + 1
    assert n_points[(3, 0.5)][0] == 11 * 5 + 1 and n_points[(3, 0.5)][1] != n_points[(1, 0.5)][1]  # smoothed points
    cfg = ScalingSettings.from_dict(base | {"ladder": {"feature": "loss", "anchor": True}})
    params, preds, _ = backtest(tables, cfg)
    row = preds.row(0, named=True)
    assert row["feature"] == "loss" and row["loss_pred"] == row["feature_pred"]
    assert row["loss_pred"] == pytest.approx(row["loss_actual"], rel=0.02)
    assert set(params["stage"]) == {"loss", "score", "interval"}
    scales = dict(params.filter(pl.col("stage") == "interval").select("param", "value").iter_rows())
    assert set(scales) == {"score_rms", "feature_rms"} and scales["feature_rms"] > 0, scales


def test_auto_anchor_where_the_score_rises_as_the_task_loss_falls():
    """anchor: auto anchors step 2 on a task whose score falls with its task loss, not on one at chance in every
    run (anchored, its sigmoid would rise in the gap between the points and the anchor), nor on the pre-training
    loss; the report says which and why, and bootstrap refits keep the full fit's choice."""
    tables = ladder_tables(noise=0.01, seed=1)
    flat = tables["task_scores"].filter(pl.col("task") == "t").with_columns(pl.lit("flat").alias("task"))
    rng = np.random.default_rng(0)
    flat = flat.with_columns(
        pl.when(pl.col("metric") == "acc")
        .then(pl.Series(0.25 + rng.normal(0, 0.01, flat.height)))
        .otherwise("value")
        .alias("value")
    )
    tables["task_scores"] = pl.concat([tables["task_scores"], flat])
    cfg = {**CFG, "predictors": ["ladder"], "bootstrap": 5}
    params, preds, report = backtest(tables, ScalingSettings.from_dict(cfg))
    n_points = dict(params.filter((pl.col("stage") == "score") & (pl.col("param") == "k")).select("task", "n_points").iter_rows())
    assert n_points == {"t": 11 * 9 + 1, "flat": 11 * 9}
    lines = [line for line in report if "step 2" in line]
    assert len(lines) == 2 and "step 2 (t) anchored: auto" in lines[1] and "step 2 (flat) not anchored: auto" in lines[0]
    flat_pred = preds.filter(pl.col("task") == "flat").row(0, named=True)
    assert abs(flat_pred["score_pred"] - 0.25) < 0.02 and flat_pred["score_hi"] < 0.3  # no refit jumped to the anchor
    for anchor, n in (("auto", 11 * 9), (True, 11 * 9 + 1)):  # the pre-training loss: anchored only when told
        cfg = {**CFG, "predictors": ["ladder"], "bootstrap": 0, "tasks": ["t"], "ladder": {"feature": "loss", "anchor": anchor}}
        params, _, report = backtest(tables, ScalingSettings.from_dict(cfg))
        assert params.filter((pl.col("stage") == "score") & (pl.col("param") == "k"))["n_points"][0] == n, anchor
        assert not any("step 2" in line for line in report)


def test_every_chain_saves_its_intermediate_prediction():
    cfg = ScalingSettings.from_dict({**CFG, "bootstrap": 0})
    _, preds, _ = backtest(synthetic_tables(), cfg)
    by = {r["predictor"]: r for r in preds.iter_rows(named=True)}
    assert by["direct"]["feature"] is None
    for name in ("flp", "chinchilla", "flpm"):
        assert by[name]["feature"] == "loss" and by[name]["loss_pred"] == pytest.approx(by[name]["loss_actual"], rel=0.05), name
    assert by["ladder"]["feature"] == "bits_per_byte" and np.isfinite(by["ladder"]["feature_pred"])


def test_a_metric_without_rows_is_an_error_listing_the_metrics_present():
    with pytest.raises(ValueError, match=r"no task_scores rows with metric 'acc_norm'.*acc \(0-shot\), bits_per_byte \(0-shot\)"):
        backtest(synthetic_tables(), ScalingSettings.from_dict({**CFG, "metric": "acc_norm"}))


def test_family_keys_without_lr_keep_a_ladder_with_a_per_size_learning_rate_together():
    tables = ladder_tables()
    tables["runs"] = tables["runs"].with_columns((0.01 / pl.col("n_params").cast(float).sqrt()).alias("lr"))
    cfg = {**CFG, "predictors": ["direct"], "bootstrap": 0}
    _, preds, report = backtest(tables, ScalingSettings.from_dict(cfg))
    assert preds.height == 0 and all("skipped" in line for line in report[:-1])  # one family per size, all too small
    assert report[-1] == (  # and the key that split them is named
        "no family could be fitted: the runs differ in lr within what would otherwise be a family of 12 runs; if the"
        " ladder sets lr per size, leave it out of fit.scaling.family_keys (now ['mixture', 'objective', 'lr'])"
    )
    _, preds, _ = backtest(tables, ScalingSettings.from_dict(cfg | {"family_keys": ["mixture", "objective"]}))
    assert preds["family"].to_list() == ["m/clm"] and preds["run"].to_list() == ["n80M-x40"]


def test_interval_scatter_widens_the_interval_by_the_score_fits_residuals():
    tables = synthetic_tables(noise=0.003)
    cfg = {**CFG, "predictors": ["direct"], "bootstrap": 20}
    _, mean, _ = backtest(tables, ScalingSettings.from_dict(cfg | {"interval": "bootstrap"}))
    _, pred, _ = backtest(tables, ScalingSettings.from_dict(cfg | {"interval": "score_scatter"}))
    assert mean["score_pred"].equals(pred["score_pred"])
    width = [(d["score_hi"] - d["score_lo"])[0] for d in (mean, pred)]
    assert width[1] > width[0], width


def test_prediction_interval_carries_step_1_scatter_through_the_chain():
    """A chain's prediction interval also carries its intermediate's scatter around step 1's law: wider than the
    score fit's scatter alone for flp and ladder, the same for direct (no intermediate)."""
    tables = synthetic_tables(noise=0.03)  # the loss scatters about its law; the score is exact in the loss
    cfg = {**CFG, "predictors": ["direct", "flp", "ladder"], "bootstrap": 20, "ladder": {"feature": "loss"}}
    width = {}
    for interval in ("score_scatter", "prediction"):
        _, pred, _ = backtest(tables, ScalingSettings.from_dict(cfg | {"interval": interval}))
        pred = pred.sort("predictor", "task", "run")
        width[interval] = (pred["score_hi"] - pred["score_lo"]).to_numpy()
        names = pred["predictor"].to_numpy()
    assert np.allclose(width["prediction"][names == "direct"], width["score_scatter"][names == "direct"])
    for chain in ("flp", "ladder"):
        assert width["prediction"][names == chain].mean() > 1.1 * width["score_scatter"][names == chain].mean(), chain


def test_ladders_prediction_interval_covers_a_new_run_as_its_nominal_95_percent():
    """30 ladders drawn from known laws, each run missing step 1's by its own 2% and each score noisy: the ladder's
    95% prediction interval covers the held-out run's actual score in at least 85% of them (measured: 28/30, step 2 anchored; the
    refits' range alone, interval: bootstrap, covered 23/30: it leaves out how far a new run misses the law)."""
    cfg = ScalingSettings.from_dict({**CFG, "predictors": ["ladder"], "bootstrap": 20, "interval": "prediction"})
    covered = [backtest(ladder_tables(noise=0.005, seed=seed, run_sd=0.02), cfg)[1]["covered"][0] for seed in range(30)]
    assert np.mean(covered) >= 0.85, covered


def test_step_1_scatter_is_counted_with_the_laws_degrees_of_freedom_and_carried_by_the_curves_secant():
    from lmforecast.fits.scaling.curves import residual_rms
    from lmforecast.fits.scaling.predictors import _propagate

    # a law of 2 parameters through 2 of 4 points exactly (as a least-absolute-deviations fit does): the median
    # |residual| is 0.15, the root mean square over the 2 free points 0.25
    assert residual_rms([0.0, 0.0, 0.3, -0.4], 2) == pytest.approx(np.sqrt((0.09 + 0.16) / 2))
    # on a line of slope -0.5 a feature scatter of 0.1 moves the score by 0.05; on a sigmoid, half the rise over +-sx
    assert _propagate(lambda v: 1.0 - 0.5 * v, np.array([1.0, 2.0]), 0.1) == pytest.approx([0.05, 0.05])
    curve = dict(a=0.5, k=-4.0, L0=1.0, b=0.25)
    spread = _propagate(lambda v: sigmoid(v, **curve), np.array([1.0]), 0.2)
    assert spread == pytest.approx((sigmoid(0.8, **curve) - sigmoid(1.2, **curve)) / 2)


def test_direct_keeps_a_score_near_1_inside_0_1():
    """A ladder whose accuracy climbs linearly in log C to 0.97 (Pythia's sciq): the line through it
    crossed 1.0 at the held-out compute; the direct predictor's fit in logit space stays below 1."""
    from lmforecast.fits.scaling.predictors import direct

    flops = np.geomspace(1e18, 1e21, 6)
    score = 0.82 + 0.05 * np.log10(flops / 1e18)  # 0.82 ... 0.97
    train = pl.DataFrame({"flops": flops, "is_final": [True] * 6, "score:sciq": score})
    held = pl.DataFrame({"flops": [1e22, 1e23]})
    line = np.polyval(np.polyfit(np.log10(flops), score, 1), np.log10(held["flops"].to_numpy()))
    assert line.max() > 1.0  # the plain line leaves [0, 1] here
    pred = direct(train, held, ["sciq"], ScalingSettings.from_dict({**CFG, "predictors": ["direct"]}), {})
    assert np.all((pred.scores["sciq"] > score.max()) & (pred.scores["sciq"] < 1.0)), pred.scores["sciq"]


def test_a_prediction_and_interval_past_1_are_reported_at_1():
    """FLP's line through accuracies rising to 0.99 crosses 1 at the held-out run (whose actual is 1): the table
    reports 1, and an interval within [0, 1] that covers it."""
    from lmforecast.fits.scaling.frames import checkpoint_frame
    from lmforecast.fits.scaling.predictors import flp

    tables = synthetic_tables()
    acc = pl.col("metric") == "acc"
    steep = pl.min_horizontal(pl.lit(1.0), 0.3 + (pl.col("value") - 0.366) * 3.2)  # linear in the loss, capped at 1
    tables["task_scores"] = tables["task_scores"].with_columns(pl.when(acc).then(steep).otherwise("value").alias("value"))
    cfg = ScalingSettings.from_dict({**CFG, "predictors": ["flp"], "bootstrap": 20})
    frame = checkpoint_frame(tables, cfg)
    raw = flp(frame.filter(pl.col("run") != "r5"), frame.filter((pl.col("run") == "r5") & pl.col("is_final")), ["t"], cfg, {})
    assert raw.scores["t"][0] > 1.02  # the chain's own prediction
    _, preds, _ = backtest(tables, cfg)
    row = preds.row(0, named=True)
    assert row["score_actual"] == 1.0 and row["score_pred"] == 1.0 and 0.0 <= row["score_lo"] <= row["score_hi"] == 1.0
    assert row["covered"]


def test_chinchilla_leaves_out_untrained_checkpoints():
    """An imported suite's step 0 (Pythia's: 0 tokens) has no L(N, D); step 1 leaves it out and stays exact."""
    tables = synthetic_tables()
    step0 = tables["checkpoints"].filter(pl.col("step") == 25).with_columns(step=0, tokens=0, flops=0.0)
    losses = tables["domain_losses"].filter(pl.col("step") == 25).with_columns(step=0, loss=pl.col("loss") + 5.0)
    scores = tables["task_scores"].filter(pl.col("step") == 25).with_columns(step=0)
    for name, extra in (("checkpoints", step0), ("domain_losses", losses), ("task_scores", scores)):
        tables[name] = pl.concat([tables[name], extra], how="vertical_relaxed")
    _, preds, report = backtest(tables, ScalingSettings.from_dict({**CFG, "predictors": ["chinchilla"], "bootstrap": 0}))
    row = preds.row(0, named=True)
    assert row["loss_pred"] == pytest.approx(row["loss_actual"], rel=1e-3), report


@pytest.mark.filterwarnings("error")  # Pythia's targets printed numpy's overflow from here
def test_sigmoid_far_on_its_flat_side_is_its_floor_without_a_warning():
    assert sigmoid(np.array([1e4]), a=0.5, k=-10.0, L0=1.0, b=0.25)[0] == 0.25


def test_ensemble_members_limit_what_the_ensemble_combines():
    """ensemble_members: [direct] leaves the ladder out of the weights, so the ensemble predicts direct's score."""
    cfg = {**CFG, "predictors": ["direct", "ladder", "ensemble"], "bootstrap": 0, "ladder": PAPER_LADDER}
    params, preds, report = backtest(ladder_tables(), ScalingSettings.from_dict(cfg | {"ensemble_members": ["direct"]}))
    by = {r["predictor"]: r for r in preds.iter_rows(named=True)}
    assert by["ensemble"]["score_pred"] == pytest.approx(by["direct"]["score_pred"]), report
    weights = params.filter((pl.col("predictor") == "ensemble") & (pl.col("stage") == "weight"))
    assert weights["param"].to_list() == ["direct"] and weights["value"].to_list() == [1.0]
    with pytest.raises(ValueError, match=r"ensemble_members: \['flp'\] are not in fit.scaling.predictors"):
        backtest(ladder_tables(), ScalingSettings.from_dict(cfg | {"ensemble_members": ["flp"]}))


def test_ladder_step1_tied_fits_one_exponent():
    """ladder.step1: params_tokens_tied fits L(N, D) with beta = alpha (Gadre et al.'s over-training law): four
    parameters, the saved predicted feature beside the score."""
    cfg = {**CFG, "predictors": ["ladder"], "bootstrap": 0, "ladder": PAPER_LADDER | {"step1": "params_tokens_tied"}}
    params, preds, report = backtest(ladder_tables(), ScalingSettings.from_dict(cfg))
    fitted = dict(params.filter(pl.col("stage") == "task_loss").select("param", "value").iter_rows())
    assert fitted["beta"] == fitted["alpha"], report
    # the data's exponents are 0.30 and 0.28: one exponent between them predicts the 80M rung's task loss closely
    assert 0.27 < fitted["alpha"] < 0.31
    row = preds.row(0, named=True)
    assert row["feature_pred"] == pytest.approx(row["feature_actual"], rel=0.01)


def test_ladder_step1_auto_uses_n_and_d_only_where_a_size_has_two_token_budgets():
    """step1: auto (the default) fits the tied L(N, D) on a ladder with three budgets per size, and a power law in C
    on the same sizes at one budget each (D/N then moves with N: L(N, D) is not identified); bootstrap refits keep
    the full fit's choice."""
    cfg = {**CFG, "predictors": ["ladder"], "bootstrap": 3}
    tables = ladder_tables()
    params, preds, report = backtest(tables, ScalingSettings.from_dict(cfg))
    fitted = dict(params.filter(pl.col("stage") == "task_loss").select("param", "value").iter_rows())
    assert fitted["beta"] == fitted["alpha"] and "C0" not in fitted, report
    assert "  ladder: step 1 (task_loss) on (N, D), alpha = beta: auto, a size has two or more token budgets" in report
    assert np.isfinite(params.filter(pl.col("param") == "log_A")["stderr_boot"][0])  # every refit fitted (N, D) too
    one_budget = {k: v.filter(~pl.col("run").str.contains("x10|x40")) if "run" in v.columns else v for k, v in tables.items()}
    params, _, report = backtest(one_budget, ScalingSettings.from_dict(cfg))
    assert "C0" in set(params.filter(pl.col("stage") == "task_loss")["param"]), report
    assert "  ladder: step 1 (task_loss) on C: auto, one token budget per size" in report


def test_sigmoid_in_the_effective_loss_recovers_the_token_multiples_coefficient():
    """fit_sigmoid_multiple on noise-free points of the sigmoid in L - g log M recovers g and the curve (L0 moved
    by g times the points' mean log M, where log M is centred); on points with no such effect it finds g = 0."""
    rng = np.random.default_rng(0)
    x, logm = rng.uniform(0.5, 2.0, 40), rng.uniform(0.0, 4.0, 40)
    truth = {"a": 0.6, "k": -6.0, "L0": 1.2, "b": 0.25}
    centred = logm - logm.mean()
    result = fit_sigmoid_multiple(x, centred, sigmoid(x - 0.08 * logm, **truth))
    expected = truth | {"g": 0.08, "L0": 1.2 + 0.08 * logm.mean()}
    for name, value in expected.items():
        assert result.params[name].value == pytest.approx(value, rel=1e-3), name
    assert fit_sigmoid_multiple(x, centred, sigmoid(x, **truth)).params["g"].value == pytest.approx(0.0, abs=1e-6)


def test_ladder_token_multiple_predicts_an_over_trained_rung_exactly():
    """ladder.token_multiple: on a ladder whose accuracy is the sigmoid of L - g log M (g = 0.1 per e-fold), the
    chain predicts the held-out run's score and recovers g; the plain sigmoid, blind to M, misses it."""
    tables = ladder_tables(g=0.1)
    base = {**CFG, "predictors": ["ladder"], "bootstrap": 0, "ladder": PAPER_LADDER | {"anchor": False}}
    params, preds, report = backtest(
        tables, ScalingSettings.from_dict(base | {"ladder": base["ladder"] | {"token_multiple": True}})
    )
    row = preds.row(0, named=True)
    assert row["run"] == "n80M-x40" and row["score_pred"] == pytest.approx(row["score_actual"], abs=2e-3), report
    step2 = dict(params.filter(pl.col("stage") == "score").select("param", "value").iter_rows())
    assert step2["g"] == pytest.approx(0.1, rel=0.02) and "log_M0" in step2
    # the shipped step 2 on the same points (the training runs' checkpoints past 10% of their steps), at the same feature
    points = tables["task_scores"].pivot(on="metric", index=["run", "step"], values="value")
    points = points.filter((pl.col("run") != "n80M-x40") & (pl.col("step") > 10))
    plain = fit_sigmoid(points["bits_per_byte"].to_numpy(), points["acc"].to_numpy()).eval(x=row["feature_pred"])
    assert abs(plain - row["score_actual"]) > 5 * abs(row["score_pred"] - row["score_actual"])


SHARED_SHAPE = {"k": -6.0, "headroom": 0.8}
RECIPES = {"a": (0.25, 3.3), "b": (0.25, 3.1), "c": (0.5, 2.9)}  # per recipe: the sigmoid's floor b and midpoint L0


def recipes_tables(noise=0.005, seed=0):
    """Three recipes (mixtures) of 6 sizes each, one token budget, whose accuracy is a sigmoid of the pre-training loss
    with one slope and rise (SHARED_SHAPE) and each recipe's own floor and midpoint (RECIPES): recipe c rises last, so
    that its 5 training runs show only the start of its rise."""
    rng = np.random.default_rng(seed)
    runs, ck, dl, ts = [], [], [], []
    for recipe, (b, L0) in RECIPES.items():
        for n in (1e7, 2e7, 4e7, 8e7, 1.6e8, 3.2e8):
            run = f"{recipe}-{int(n / 1e6)}M"
            runs.append({"run": run, "mixture": recipe, "objective": "clm", "lr": 0.003, "n_params": int(n)})
            for step in range(10, 101, 10):
                tokens = int(20 * n * step / 100)
                flops = 6.0 * n * tokens
                loss = 1.8 + 40.0 * flops**-0.08
                acc = sigmoid(loss, SHARED_SHAPE["headroom"] * (1 - b), SHARED_SHAPE["k"], L0, b) + rng.normal(0, noise)
                ck.append({"run": run, "step": step, "tokens": tokens, "flops": flops})
                dl.append({"run": run, "step": step, "domain": "d", "loss": loss})
                row = {"run": run, "step": step, "task": "t", "prompt": "p", "shots": 0, "metric": "acc"}
                ts.append(row | {"value": acc, "chance": 0.25, "n": 400})
    frames = {"runs": runs, "checkpoints": ck, "domain_losses": dl, "task_scores": ts}
    return {name: pl.DataFrame(rows) for name, rows in frames.items()}


@pytest.mark.filterwarnings("error")  # no warning may leak from a fit
def test_shared_shape_recovers_the_recipes_slope_and_rise_and_predicts_the_recipe_that_rises_last():
    """ladder.shared_shape: step 2's slope and rise fitted once on every recipe, each keeping its floor and midpoint.
    Alone, recipe c's points (the start of its rise) leave its ceiling to the fit; shared, the other recipes set it."""
    tables = recipes_tables()
    base = {**CFG, "predictors": ["ladder"], "bootstrap": 3}
    errors = {}
    for shared in (False, True):
        cfg = ScalingSettings.from_dict(base | {"ladder": {"feature": "loss", "shared_shape": shared}})
        params, preds, report = backtest(tables, cfg)
        errors[shared] = dict(preds.select("run", "abs_error").iter_rows())
    assert any("step 2's slope k" in line and "shared by 3 families" in line for line in report), report
    score = params.filter(pl.col("stage") == "score")
    for name, value in SHARED_SHAPE.items():
        values = score.filter(pl.col("param") == name)["value"]
        assert values.n_unique() == 1 and values[0] == pytest.approx(value, rel=0.05), name
    held = score.filter(pl.col("param").is_in(list(SHARED_SHAPE)))
    # no Jacobian error in a family's fit, where they are held; the refits on every family's resamples move them
    assert held["stderr"].is_nan().all() and (held["stderr_boot"] > 0).all()
    assert held["stderr_note"].str.starts_with("held fixed: shared by the task's families").all()
    assert errors[True]["c-320M"] < 0.005 and errors[False]["c-320M"] > 5 * errors[True]["c-320M"], errors
    assert max(errors[True].values()) < 0.02, errors
    # the ensemble's back-test inside the ladder refits the shared shape without its held rung
    cfg = ScalingSettings.from_dict(
        base | {"predictors": ["direct", "ladder", "ensemble"], "ladder": {"feature": "loss", "shared_shape": True}}
    )
    _, preds, report = backtest(tables, cfg)
    ensemble = preds.filter(pl.col("predictor") == "ensemble")
    assert ensemble.height == 3 and (ensemble["abs_error"] < 0.03).all(), report
