import numpy as np
import polars as pl
import pytest
from scipy import stats
from sklearn.metrics import adjusted_rand_score

from lmforecast.data import planted
from lmforecast.fits.relatedness import RelatednessSettings
from lmforecast.fits.relatedness.trajectories import (
    correlation_groups,
    correlation_matrix,
    k_medoids,
    point_relatedness,
    polynomial_features,
    polynomial_groups,
    task_relatedness,
    trajectories,
)

CFG = {"shots": 0, "prompt": None, "clusters": 4, "degree": 3, "seed": 0}


def planted_matrix(n=300, runs=6, checkpoints=4, groups=4, noise=0.05, seed=0):
    steps = np.arange(1, checkpoints + 1) / checkpoints
    progress = np.concatenate([q * steps for q in np.linspace(0.4, 1.0, runs)])
    x, labels = planted.nll_matrix(n, progress, groups, noise, seed)
    return x, labels, np.repeat(np.arange(runs), checkpoints)


def test_correlation_matrix_is_pearson():
    x = np.random.default_rng(0).normal(size=(30, 12))
    assert np.allclose(correlation_matrix(x), np.corrcoef(x))


def test_constant_trajectory_is_uncorrelated_not_nan():
    x = np.vstack([np.ones(5), np.arange(5.0), np.arange(5.0) ** 2])
    c = correlation_matrix(x)
    assert np.isfinite(c).all() and c[0, 1] == 0 and c[1, 2] > 0.9


def test_interpolating_polynomial_reproduces_the_standardised_trajectory():
    x, _, segments = planted_matrix(n=20)
    coef = polynomial_features(x, segments, degree=3)  # 4 checkpoints per run: degree 3 interpolates
    assert coef.shape == (20, 6 * 4)
    z = (x - x.mean(1, keepdims=True)) / x.std(1, keepdims=True)
    t = np.linspace(-1, 1, 4)
    for run in range(6):
        back = np.polynomial.legendre.legval(t, coef[:, run * 4 : (run + 1) * 4].T)
        assert np.allclose(back, z[:, segments == run])


def test_k_medoids_recovers_separated_groups_deterministically():
    rng = np.random.default_rng(1)
    centres = np.array([[0, 0], [10, 0], [0, 10]])
    truth = np.repeat(np.arange(3), 40)
    pts = centres[truth] + rng.normal(size=(120, 2))
    dist = np.linalg.norm(pts[:, None] - pts[None], axis=-1)
    medoids, labels = k_medoids(dist, 3, seed=0)
    assert adjusted_rand_score(truth, labels) == 1.0
    assert all(labels[m] == c for c, m in enumerate(medoids))  # a medoid belongs to its own group
    again = k_medoids(dist, 3, seed=0)
    assert np.array_equal(again[0], medoids) and np.array_equal(again[1], labels)


def test_linear_and_quadratic_relatedness_agree_on_planted_groups():
    x, truth, segments = planted_matrix()
    quadratic = correlation_groups(x, 4, seed=0)
    linear = polynomial_groups(x, segments, degree=3, k=4, seed=0)
    assert adjusted_rand_score(quadratic, linear) >= 0.9
    assert adjusted_rand_score(truth, linear) >= 0.9
    assert adjusted_rand_score(truth, quadratic) >= 0.9


def test_point_relatedness_on_a_table():
    scores = planted.example_scores(n_examples=80, runs=6, checkpoints=4, groups=3, tasks=("t1", "t2"))
    points, comparison = point_relatedness(scores, RelatednessSettings.from_dict({**CFG, "clusters": 3}))
    assert points.height == 160 and set(points["task"]) == {"t1", "t2"}
    assert comparison["n_checkpoints"].to_list() == [24, 24]
    assert (comparison["adjusted_rand"] >= 0.9).all()
    assert (comparison["distance_pearson"] > 0.5).all()
    assert points.select("mds_x", "mds_y").to_numpy().std(axis=0).min() > 0


def test_missing_example_names_the_checkpoint():
    scores = planted.example_scores(n_examples=10, runs=2, checkpoints=2, tasks=("t1",))
    broken = scores.filter(~((pl.col("run") == "run1") & (pl.col("step") == 20) & (pl.col("example") == "t1-00003")))
    with pytest.raises(ValueError, match="checkpoint run1 step 20 has 9 rows for 10 examples"):
        trajectories(broken, "logprob_correct")


def test_task_relatedness_matches_scipy_and_is_symmetric():
    rng = np.random.default_rng(0)
    n = 12
    base = rng.normal(size=n)
    values = {"a": base, "b": 2 * base + 0.1 * rng.normal(size=n), "c": rng.normal(size=n)}
    rows = [
        {
            "run": f"r{i // 4}",
            "step": i % 4,
            "task": t,
            "prompt": "p",
            "shots": 0,
            "metric": "logprob_correct",
            "value": float(v[i]),
        }
        for t, v in values.items()
        for i in range(n)
    ]
    m = task_relatedness(pl.DataFrame(rows), RelatednessSettings.from_dict(CFG))
    assert m.height == 9
    ab = m.filter((pl.col("task_a") == "a") & (pl.col("task_b") == "b")).row(0, named=True)
    ref = stats.pearsonr(values["a"], values["b"])
    assert ab["pearson_r"] == pytest.approx(ref.statistic) and ab["p_value"] == pytest.approx(ref.pvalue)
    ba = m.filter((pl.col("task_a") == "b") & (pl.col("task_b") == "a")).row(0, named=True)
    assert ba["pearson_r"] == pytest.approx(ab["pearson_r"]) and ab["n_checkpoints"] == n
