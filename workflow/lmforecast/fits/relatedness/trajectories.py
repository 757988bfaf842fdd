"""Task and point relatedness from training dynamics (the SELECT proposal's objectives 2 and 3).

A point's (example's) trajectory is its negative log-likelihood of the correct answer
at every checkpoint, runs side by side (run by run, steps in order). Two points are
related when their trajectories correlate.

- O(n^2), the reference: the all-pairs Pearson correlation matrix of the trajectories,
  grouped by K-medoids on the distance 1 - r.
- O(n): a low-degree Legendre polynomial fitted to each run's stretch of every
  standardised trajectory; points are grouped by K-means on the coefficients. With the
  degree one below the checkpoints per run the polynomial interpolates, as the seed found
  best; the coefficients are then a fixed linear map of the standardised trajectory.

Tasks are related when their mean-NLL trajectories over checkpoints correlate (or those of another
task_scores metric, e.g. the accuracy that imported results hold).
"""

import warnings

import numpy as np
import polars as pl
from scipy import stats
from sklearn.cluster import KMeans
from sklearn.manifold import MDS
from sklearn.metrics import adjusted_rand_score

from lmforecast.tables import first_prompt

# The distance-matrix comparison is quadratic; beyond this many points it uses a seeded sample.
COMPARE_MAX_POINTS = 2000


def trajectories(examples: pl.DataFrame, value: str, runs=None):
    """One task's examples as a matrix: rows = examples, columns = checkpoints (run, step).

    `examples` holds one task, prompt and shots. Returns (example ids, [(run, step)], matrix);
    a checkpoint that lacks some example is named, as the matrix must be complete.
    """
    if runs is not None:
        examples = examples.filter(pl.col("run").is_in(list(runs)))
    if examples.height == 0:
        raise ValueError("no example scores for these runs")
    keys = examples.select("run", "step").unique().sort("run", "step")
    ids = examples["example"].unique().sort()
    counts = examples.group_by("run", "step").len()
    short = counts.filter(pl.col("len") != ids.len()).sort("run", "step")
    if short.height:
        r = short.row(0, named=True)
        raise ValueError(
            f"example_scores: checkpoint {r['run']} step {r['step']} has {r['len']} rows for "
            f"{ids.len()} examples; every checkpoint needs every example exactly once"
        )
    wide = (
        examples.with_columns(pl.format("{}@{}", "run", "step").alias("ckpt"))
        .pivot(on="ckpt", index="example", values=value)
        .sort("example")
    )
    cols = [f"{r}@{s}" for r, s in keys.iter_rows()]
    return wide["example"].to_list(), list(keys.iter_rows()), wide.select(cols).to_numpy().astype(np.float64)


def standardize(x: np.ndarray) -> np.ndarray:
    """Each row to mean 0 and unit variance; a constant row becomes zeros (uncorrelated with all)."""
    centred = x - x.mean(axis=1, keepdims=True)
    sd = centred.std(axis=1, keepdims=True)
    return np.divide(centred, sd, out=np.zeros_like(centred), where=sd > 0)


def correlation_matrix(x: np.ndarray, dtype=np.float64) -> np.ndarray:
    """All-pairs Pearson correlation of the rows, O(n^2 T) in one matrix product."""
    z = standardize(x).astype(dtype)
    c = z @ z.T
    c /= x.shape[1]
    np.clip(c, -1.0, 1.0, out=c)
    return c


def polynomial_features(x: np.ndarray, segments, degree: int) -> np.ndarray:
    """Legendre coefficients of each row's standardised trajectory, fitted per segment (run).

    `segments`: per column, the segment (run) it belongs to, columns of a segment in step
    order. Each segment is fitted on x in [-1, 1] at a degree of at most its length - 1.
    One least-squares solve per segment for all rows at once: O(n T degree).
    """
    z = standardize(x)
    segments = np.asarray(segments)
    parts = []
    for seg in dict.fromkeys(segments):
        cols = np.flatnonzero(segments == seg)
        if cols.size == 1:
            parts.append(z[:, cols])
            continue
        t = np.linspace(-1.0, 1.0, cols.size)
        coef = np.polynomial.legendre.legfit(t, z[:, cols].T, min(degree, cols.size - 1))
        parts.append(coef.T)
    return np.hstack(parts)


def k_means(features: np.ndarray, k: int, seed: int):
    """K-means labels and centres (scikit-learn, 10 restarts)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Number of distinct clusters")  # duplicate points: fewer groups
        km = KMeans(n_clusters=k, n_init=10, random_state=seed).fit(features)
    return km.labels_, km.cluster_centers_


def k_medoids(dist: np.ndarray, k: int, seed: int, n_init: int = 5, max_iter: int = 100):
    """K-medoids by alternating assignment and medoid update, k-medoids++ starts; the cheapest wins.

    `dist`: a symmetric n x n distance matrix. Returns (medoid indices, labels); a label is
    the index into the medoids. Deterministic for a given seed.
    """
    n = dist.shape[0]
    rng = np.random.default_rng(seed)
    best = None
    for _ in range(n_init):
        medoids = [int(rng.integers(n))]
        nearest = dist[:, medoids[0]].astype(np.float64)
        for _ in range(1, k):
            total = nearest.sum()
            nxt = int(rng.choice(n, p=nearest / total)) if total > 0 else int(rng.choice(np.setdiff1d(np.arange(n), medoids)))
            medoids.append(nxt)
            nearest = np.minimum(nearest, dist[:, nxt])
        medoids = np.array(medoids)
        for _ in range(max_iter):
            labels = np.argmin(dist[:, medoids], axis=1)
            new = medoids.copy()
            for c in range(k):
                members = np.flatnonzero(labels == c)
                if members.size:
                    new[c] = members[np.argmin(dist[np.ix_(members, members)].sum(axis=1))]
            if np.array_equal(new, medoids):
                break
            medoids = new
        labels = np.argmin(dist[:, medoids], axis=1)
        cost = float(dist[np.arange(n), medoids[labels]].sum())
        if best is None or cost < best[0]:
            best = (cost, medoids, labels)
    return best[1], best[2]


def correlation_groups(x: np.ndarray, k: int, seed: int):
    """The O(n^2) grouping: K-medoids on 1 - Pearson r of the trajectories."""
    dist = correlation_matrix(x, np.float32)
    np.subtract(1.0, dist, out=dist)  # in place: at 10k points one n x n float32 matrix is 400 MB
    return k_medoids(dist, k, seed)[1]


def polynomial_groups(x: np.ndarray, segments, degree: int, k: int, seed: int):
    """The O(n) grouping: K-means on the per-run polynomial coefficients."""
    return k_means(polynomial_features(x, segments, degree), k, seed)[0]


def distance_agreement(x: np.ndarray, segments, degree: int, seed: int) -> float:
    """Pearson r between the two methods' pairwise distances (1 - r vs coefficient distance), as the seed compares them."""
    if x.shape[0] > COMPARE_MAX_POINTS:
        x = x[np.sort(np.random.default_rng(seed).choice(x.shape[0], COMPARE_MAX_POINTS, replace=False))]
    iu = np.triu_indices(x.shape[0], k=1)
    d_corr = (1.0 - correlation_matrix(x))[iu]
    feats = polynomial_features(x, segments, degree)
    sq = (feats**2).sum(axis=1)
    d_poly = np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2 * feats @ feats.T, 0.0))[iu]
    return float(stats.pearsonr(d_corr, d_poly).statistic)


def mds_embedding(x: np.ndarray, seed: int) -> np.ndarray:
    """2-D metric multidimensional scaling of the correlation distances (for plots).

    Started from classical MDS; eps = 1e-3 (scikit-learn's tolerance before 1.7) stops it in a
    few iterations, where 1e-6 costs seconds per task at 500 points for no visible change.
    """
    dist = 1.0 - correlation_matrix(x)
    np.fill_diagonal(dist, 0.0)
    dist = (dist + dist.T) / 2
    mds = MDS(n_components=2, metric="precomputed", random_state=seed, n_init=1, init="classical_mds", eps=1e-3)
    return mds.fit_transform(dist)


def point_relatedness(example_scores: pl.DataFrame, cfg):
    """Per task: both groupings of the examples, their agreement and an MDS embedding.

    Returns (points: one row per task x example, comparison: one row per task).
    """
    scores = first_prompt(example_scores.filter(pl.col("shots") == cfg.shots), cfg.prompt)
    point_rows, compare_rows = [], []
    for task in sorted(scores["task"].unique()):
        t = scores.filter(pl.col("task") == task).with_columns((-pl.col("logprob_correct")).alias("nll"))
        ids, ckpts, x = trajectories(t, "nll")
        segments = [run for run, _ in ckpts]
        k = min(cfg.clusters, len(ids))
        corr_labels = correlation_groups(x, k, cfg.seed)
        poly_labels = polynomial_groups(x, segments, cfg.degree, k, cfg.seed)
        xy = mds_embedding(x, cfg.seed)
        prompt = t["prompt"][0]
        point_rows += [
            {
                "task": task,
                "prompt": prompt,
                "example": e,
                "group_correlation": int(a),
                "group_polynomial": int(b),
                "mds_x": float(p[0]),
                "mds_y": float(p[1]),
            }
            for e, a, b, p in zip(ids, corr_labels, poly_labels, xy)
        ]
        compare_rows.append(
            {
                "task": task,
                "prompt": prompt,
                "shots": cfg.shots,
                "n_examples": len(ids),
                "n_checkpoints": len(ckpts),
                "clusters": k,
                "adjusted_rand": float(adjusted_rand_score(corr_labels, poly_labels)),
                "distance_pearson": distance_agreement(x, segments, cfg.degree, cfg.seed),
            }
        )
    return pl.DataFrame(point_rows), pl.DataFrame(compare_rows)


def task_relatedness(task_scores: pl.DataFrame, cfg) -> pl.DataFrame:
    """Pearson r (with p-value) between tasks' trajectories over all checkpoints; long format, both orders.

    The trajectory is of cfg.metric (default: the mean NLL of the correct answer); checkpoints that lack
    some task are left out.
    """
    metric = cfg.metric or "logprob_correct"
    scores = task_scores.filter((pl.col("metric") == metric) & (pl.col("shots") == cfg.shots))
    if scores.height == 0:
        raise ValueError(
            f"fit relatedness: task_scores has no metric {metric!r} at {cfg.shots} shots; it has "
            f"{sorted(task_scores['metric'].unique())} at shots {sorted(task_scores['shots'].unique())}"
        )
    chosen = first_prompt(scores, cfg.prompt).with_columns(
        pl.format("{}@{}", "run", "step").alias("ckpt"),
        (-pl.col("value") if metric == "logprob_correct" else pl.col("value")).alias("trajectory"),  # NLL: -logprob
    )
    wide = chosen.pivot(on="task", index="ckpt", values="trajectory").sort("ckpt").drop_nulls()
    tasks = sorted(c for c in wide.columns if c != "ckpt")
    rows = []
    for a in tasks:
        for b in tasks:
            x, y = wide[a].to_numpy(), wide[b].to_numpy()
            r, p = np.nan, np.nan
            if a == b:
                r, p = 1.0, 0.0  # exactly; scipy's answer differs from it by rounding
            elif len(x) >= 3:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", stats.ConstantInputWarning)  # a flat trajectory: NaN
                    res = stats.pearsonr(x, y)
                r, p = float(res.statistic), float(res.pvalue)
            rows.append({"task_a": a, "task_b": b, "pearson_r": r, "p_value": p, "n_checkpoints": len(x)})
    return pl.DataFrame(
        rows,
        schema={
            "task_a": pl.String,
            "task_b": pl.String,
            "pearson_r": pl.Float64,
            "p_value": pl.Float64,
            "n_checkpoints": pl.Int64,
        },
    )
