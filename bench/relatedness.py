"""Point relatedness, O(n) vs O(n^2): polynomial coefficients + K-means vs all-pairs correlation + K-medoids.

Both group the same synthetic benchmark (lmforecast.data.planted: examples in planted groups of
training dynamics) into the same number of groups, in one process, one thread, timed side
by side; the O(n^2) method (the seed's all-pairs correlation of NLL trajectories) is the
reference:

    python bench/relatedness.py          # 10,000 examples x 50 checkpoints; writes bench/results/relatedness.json

Timed: from the trajectory matrix to group labels (O(n): standardise, per-run Legendre fit,
K-means with 10 restarts; O(n^2): the n x n correlation matrix in float32, 1 - r, K-medoids
with 5 restarts). Peak memory is traced (tracemalloc, numpy's allocations) in a separate,
untimed run of each. Agreement: adjusted Rand index between the two groupings and of each
with the planted groups, and Pearson r between the two methods' pairwise distances (on a
seeded sample of 2,000 points, as the workflow does).
"""

import argparse
import datetime
import platform
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
from device import cpu_name, write_result  # noqa: E402 (bench/device.py, beside this script)
from sklearn.metrics import adjusted_rand_score
from threadpoolctl import threadpool_limits

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow"))

from lmforecast.data.planted import nll_matrix  # noqa: E402
from lmforecast.fits.relatedness.trajectories import correlation_groups, distance_agreement, polynomial_groups  # noqa: E402


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def traced_peak(fn):
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--examples", type=int, default=10_000)
    ap.add_argument("--runs", type=int, default=5, help="runs side by side in a trajectory")
    ap.add_argument("--checkpoints", type=int, default=10, help="checkpoints per run")
    ap.add_argument("--groups", type=int, default=20, help="planted groups = groups sought")
    ap.add_argument("--degree", type=int, default=4, help="Legendre degree per run")
    ap.add_argument("--noise", type=float, default=0.05)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(REPO / "bench/results/relatedness.json"))
    args = ap.parse_args()

    steps = np.arange(1, args.checkpoints + 1) / args.checkpoints
    progress = np.concatenate([q * steps for q in np.linspace(0.4, 1.0, args.runs)])
    x, planted = nll_matrix(args.examples, progress, args.groups, args.noise, args.seed)
    segments = np.repeat(np.arange(args.runs), args.checkpoints)

    def ours():
        return polynomial_groups(x, segments, args.degree, args.groups, args.seed)

    def reference():
        return correlation_groups(x, args.groups, args.seed)

    times = {"ours": [], "reference": []}
    with threadpool_limits(1):
        for _ in range(args.reps):  # alternate, so that machine noise hits both alike
            t, linear = timed(ours)
            times["ours"].append(t)
            t, quadratic = timed(reference)
            times["reference"].append(t)
        peak = {"ours": traced_peak(ours), "reference": traced_peak(reference)}
        dist_r = distance_agreement(x, segments, args.degree, args.seed)
    med = {k: float(np.median(v)) for k, v in times.items()}
    import resource

    result = {
        "benchmark": "point relatedness: trajectories -> groups of examples",
        "ours": round(med["ours"], 3),
        "reference": round(med["reference"], 3),
        "ratio": round(med["reference"] / med["ours"], 2),
        "unit": "seconds (median), lower is better; ratio = reference / ours",
        "ours_name": f"O(n): per-run Legendre fit (degree {args.degree}) + scikit-learn KMeans (n_init=10)",
        "reference_name": "O(n^2): all-pairs Pearson correlation (float32) + numpy K-medoids on 1 - r (5 k-medoids++ starts)",
        "all_seconds": {k: [round(t, 3) for t in v] for k, v in times.items()},
        "reps": args.reps,
        "peak_memory_mb": {k: round(v / 2**20, 1) for k, v in peak.items()},
        "process_max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "adjusted_rand": {
            "ours_vs_reference": round(float(adjusted_rand_score(quadratic, linear)), 4),
            "ours_vs_planted": round(float(adjusted_rand_score(planted, linear)), 4),
            "reference_vs_planted": round(float(adjusted_rand_score(planted, quadratic)), 4),
        },
        "distance_pearson": round(dist_r, 4),
        "examples": args.examples,
        "checkpoints": args.runs * args.checkpoints,
        "data": f"lmforecast.data.planted: {args.groups} planted groups, {args.runs} runs x {args.checkpoints} checkpoints, "
        f"noise {args.noise}, seed {args.seed}",
        "device": f"cpu: {cpu_name()}, 1 thread",
        "versions": {
            "numpy": np.__version__,
            "scikit-learn": __import__("sklearn").__version__,
            "python": platform.python_version(),
        },
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": "python bench/relatedness.py " + " ".join(sys.argv[1:]),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    write_result(result, args.out)


if __name__ == "__main__":
    main()
