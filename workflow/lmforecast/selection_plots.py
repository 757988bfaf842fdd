"""Plots (PNG, Agg) of the seed-002 analyses: zero-shot vs SFT, task and point relatedness, selection.

Each is saved with the data it draws as Parquet beside it (same stem), as the report's own figures are."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import polars as pl  # noqa: E402
from matplotlib.ticker import NullFormatter  # noqa: E402

from lmforecast.report_plots import save_plot  # noqa: E402  (same format as the report's plots)


def plot_transfer(pairs: pl.DataFrame, corr: pl.DataFrame, task: str, path):
    """Zero-shot vs post-SFT accuracy of one task, one panel per prompt; a line joins a run's checkpoints."""
    t = pairs.filter(pl.col("task") == task)
    prompts = sorted(t["prompt"].unique())
    fig, axes = plt.subplots(1, max(len(prompts), 1), figsize=(4 * max(len(prompts), 1), 3.6), squeeze=False)
    for ax, prompt in zip(axes[0], prompts):
        p = t.filter(pl.col("prompt") == prompt)
        for (method, data), color in zip(sorted(p.select("sft_method", "sft_data").unique().iter_rows()), plt.cm.tab10.colors):
            g = p.filter((pl.col("sft_method") == method) & (pl.col("sft_data") == data))
            r = corr.filter((pl.col("task") == task) & (pl.col("prompt") == prompt) & (pl.col("sft_method") == method)
                            & (pl.col("sft_data") == data) & (pl.col("scope") == "across_runs"))
            label = f"{method}/{data}" + (f": r={r['pearson_r'][0]:.2f} (p={r['pearson_p'][0]:.2g})" if r.height else "")
            for i, (_, run) in enumerate(g.group_by("run", maintain_order=True)):
                ax.plot(run["zero_shot"], run["fine_tuned"], "o-", ms=4, lw=0.8, alpha=0.7, color=color,
                        label=label if i == 0 else None)
        ax.set_title(f"{task}, prompt '{prompt}'", fontsize=9)
        ax.set_xlabel("zero-shot accuracy")
        ax.legend(fontsize=6)
    axes[0][0].set_ylabel("accuracy after SFT")
    fig.suptitle("Zero-shot vs fine-tuned accuracy (r: across runs' last fine-tuned checkpoints)", fontsize=9)
    save_plot(fig, path, t)


def plot_task_relatedness(matrix: pl.DataFrame, path):
    """Heat map of the tasks' mean-NLL trajectory correlations, p-values in the cells."""
    tasks = sorted(matrix["task_a"].unique())
    r = np.full((len(tasks), len(tasks)), np.nan)
    p = np.full_like(r, np.nan)
    pos = {t: i for i, t in enumerate(tasks)}
    for row in matrix.iter_rows(named=True):
        r[pos[row["task_a"]], pos[row["task_b"]]] = row["pearson_r"]
        p[pos[row["task_a"]], pos[row["task_b"]]] = row["p_value"]
    fig, ax = plt.subplots(figsize=(1.3 * len(tasks) + 2, 1.1 * len(tasks) + 1))
    im = ax.imshow(r, vmin=-1, vmax=1, cmap="RdBu_r")
    for i in range(len(tasks)):
        for j in range(len(tasks)):
            ax.text(j, i, f"{r[i, j]:.2f}\n(p={p[i, j]:.1g})", ha="center", va="center", fontsize=7)
    ax.set_xticks(range(len(tasks)), tasks, rotation=30, ha="right")
    ax.set_yticks(range(len(tasks)), tasks)
    fig.colorbar(im, ax=ax, label="Pearson r of mean NLL over checkpoints")
    ax.set_title("Task relatedness", fontsize=10)
    save_plot(fig, path, matrix)


def plot_point_relatedness(points: pl.DataFrame, comparison: pl.DataFrame, path):
    """MDS of each task's point-correlation distances, coloured by the O(n) polynomial groups."""
    tasks = sorted(points["task"].unique())
    fig, axes = plt.subplots(1, len(tasks), figsize=(3.4 * len(tasks), 3.4), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        p = points.filter(pl.col("task") == task)
        c = comparison.filter(pl.col("task") == task).row(0, named=True)
        ax.scatter(p["mds_x"], p["mds_y"], c=p["group_polynomial"], cmap="tab10", s=10)
        ax.set_title(f"{task}\nARI {c['adjusted_rand']:.2f}, distance r {c['distance_pearson']:.2f}", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("Point relatedness: MDS of 1 - r of NLL trajectories (colour: polynomial-coefficient groups)", fontsize=9, y=1.06)
    save_plot(fig, path, points)


def plot_selection(rows: pl.DataFrame, path):
    """MAE of the full-benchmark estimate and Kendall tau vs budget, per task; random: mean +- std over draws.

    A panel without a finite value (tau is undefined when all target models tie) says so.
    """
    tasks = sorted(rows["task"].unique()) if rows.height else []
    fig, axes = plt.subplots(2, max(len(tasks), 1), figsize=(3.6 * max(len(tasks), 1), 6), squeeze=False)
    colors = {"select": "C0", "anchor_points": "C1", "random": "C7"}
    metrics = (("mae", "mae_std"), ("kendall_tau", "kendall_tau_std"))
    for col, task in enumerate(tasks):
        t = rows.filter(pl.col("task") == task)
        budgets = sorted(t["budget"].unique())
        for row, (value, spread) in enumerate(metrics):
            ax = axes[row][col]
            finite = t.filter(pl.col(value).is_finite())
            if finite.height == 0:
                ax.text(0.5, 0.5, f"{value} undefined\n(target models tie)", ha="center", va="center", transform=ax.transAxes)
                continue
            for method, color in colors.items():
                m = finite.filter(pl.col("method") == method).sort("budget")
                ax.plot(m["budget"], m[value], "o-", color=color, label=method, ms=4)
                if method == "random":
                    sd = m[spread].fill_nan(0.0)
                    ax.fill_between(m["budget"], m[value] - sd, m[value] + sd, color=color, alpha=0.25)
            ax.set_xscale("log")
            ax.set_xticks(budgets, [str(b) for b in budgets])
            ax.xaxis.set_minor_formatter(NullFormatter())
        axes[0][col].set_title(task, fontsize=9)
        axes[1][col].set_xlabel("budget B (examples)")
    axes[0][0].set_ylabel("MAE of full-benchmark accuracy")
    axes[1][0].set_ylabel("Kendall tau (LL on B points vs true acc)")
    axes[0][0].legend(fontsize=7)
    fig.suptitle("Benchmark prediction from B selected points, held-out models", fontsize=9)
    save_plot(fig, path, rows)
