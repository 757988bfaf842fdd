"""A synthetic benchmark with planted groups of training dynamics (for tests and bench/relatedness.py).

Each example belongs to one of `groups` groups; a group is a shape of the NLL-of-correct
trajectory over training (learned early, learned late, never learned, forgotten, ...)
with its own timing. An example's NLL at a checkpoint is its group's shape at the run's
effective progress, scaled and shifted per example, plus noise: the correlation of two
trajectories is high within a group and lower across. The example is correct when its
NLL is below its own threshold; its correct-class confidence is a logistic of the gap.
"""

import numpy as np
import polars as pl


def group_shapes(groups: int, rng):
    """Per group: (midpoint, steepness, direction) of a logistic learning curve."""
    return [(rng.uniform(0.1, 0.9), rng.uniform(6, 20), 1.0 if g % 4 else -1.0) for g in range(groups)]


def nll_matrix(n_examples: int, progress: np.ndarray, groups: int, noise: float, seed: int):
    """(NLL matrix n_examples x checkpoints, planted group of each example). `progress` in (0, 1] per checkpoint."""
    rng = np.random.default_rng(seed)
    shapes = group_shapes(groups, rng)
    labels = rng.integers(groups, size=n_examples)
    curves = np.array([d / (1 + np.exp(-k * (progress - m))) for m, k, d in shapes])
    scale = rng.uniform(0.5, 2.0, size=(n_examples, 1))
    offset = rng.uniform(1.0, 4.0, size=(n_examples, 1))
    nll = offset - scale * curves[labels] + noise * rng.standard_normal((n_examples, progress.size))
    return np.maximum(nll, 0.01), labels


def example_scores(n_examples=120, runs=6, checkpoints=4, groups=4, noise=0.05, tasks=("t1", "t2"), seed=0) -> pl.DataFrame:
    """An example_scores table (required columns) for `runs` runs of growing quality."""
    rows = []
    for ti, task in enumerate(tasks):
        rng = np.random.default_rng([seed, ti])
        quality = np.linspace(0.4, 1.0, runs)
        steps = np.arange(1, checkpoints + 1) * 10
        progress = np.concatenate([q * steps / steps[-1] for q in quality])
        nll, _ = nll_matrix(n_examples, progress, groups, noise, seed=int(rng.integers(1 << 31)))
        threshold = rng.uniform(1.0, 3.0, size=(n_examples, 1))
        confidence = 1 / (1 + np.exp(nll - threshold))
        for j, (r, s) in enumerate((r, s) for r in range(runs) for s in steps):
            for i in range(n_examples):
                rows.append(
                    {
                        "run": f"run{r}",
                        "step": int(s),
                        "task": task,
                        "prompt": "p",
                        "shots": 0,
                        "example": f"{task}-{i:05d}",
                        "correct": bool(nll[i, j] < threshold[i, 0]),
                        "logprob_correct": float(-nll[i, j]),
                        "prob_correct_norm": float(confidence[i, j]),
                        "correct_norm": bool(nll[i, j] < threshold[i, 0]),
                        "ppl_correct": float(np.exp(nll[i, j])),
                        "tokens_correct": 1,
                    }
                )
    return pl.DataFrame(rows)
