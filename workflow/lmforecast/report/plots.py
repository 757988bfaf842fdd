"""The report's figures (matplotlib, Agg): each saved as PNG with the data it draws as Parquet beside it.

Every function takes the tables/fits it draws, and writes `<path>.png` and `<path>.parquet`
(same stem), so a figure can be redrawn or reused without rerunning the workflow.
"""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import polars as pl  # noqa: E402
from matplotlib.ticker import NullFormatter  # noqa: E402

from lmforecast.fits.scaling.curves import power_law  # noqa: E402
from lmforecast.io import atomic_path  # noqa: E402

DPI = 110
# Families and runs get fixed colours from sorted names: the same run has the same colour in every figure.
PALETTE = plt.cm.tab20.colors


def save_plot(fig, path, data: pl.DataFrame):
    """PNG of `fig` at `path`, and `data` (what the figure draws) as Parquet under the same stem."""
    from pathlib import Path

    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=DPI, bbox_inches="tight", format="png")
    plt.close(fig)
    with atomic_path(path.with_suffix(".parquet")) as tmp:
        data.write_parquet(tmp)


def empty_plot(path, message: str, data: pl.DataFrame):
    """A figure that says why there is nothing to draw (the rule declares every figure as an output)."""
    fig, ax = plt.subplots(figsize=(6, 1.2))
    ax.text(0.5, 0.5, message, ha="center", va="center", fontsize=10)
    ax.axis("off")
    save_plot(fig, path, data)


def _colors(names):
    names = sorted(set(names))
    palette = plt.cm.tab10.colors if len(names) <= 10 else PALETTE  # tab20's light/dark pairs only when needed
    return {n: palette[i % len(palette)] for i, n in enumerate(names)}


def _log_x(ax):
    """Log x axis labelled at decades only (minor labels overlap on short ranges)."""
    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(NullFormatter())


LEGEND_FONTSIZE = 7


def _legend_outside(ax, **kw):
    """The legend beside `ax`, in as many columns as keep it within the figure's height (the mlfoundations
    example draws 104 runs: one column ran off the figure and matplotlib warned that tight_layout failed)."""
    n = len(kw["labels"]) if "labels" in kw else len(ax.get_legend_handles_labels()[1])
    rows = max(1, int(0.8 * ax.figure.get_figheight() * 72 / (1.7 * LEGEND_FONTSIZE)))  # a row: about 1.7 em
    ax.legend(
        fontsize=LEGEND_FONTSIZE,
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        borderaxespad=0,
        ncols=-(-n // rows),
        **kw,
    )


def _legend_outside_of(axes, ax, **kw):
    """One legend of every panel's labelled lines (each label once), beside `ax`: a panel may lack some runs or
    all (an imported run has no learning rate), and matplotlib warns on an empty legend."""
    handles = {}
    for source in axes:
        for handle, label in zip(*source.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    if handles:
        _legend_outside(ax, handles=list(handles.values()), labels=list(handles), **kw)


SMOOTHING_STEPS = 20  # the moving average over the training loss: the window of the checkpoints' train_loss


def training_loss_steps(training_loss: pl.DataFrame, checkpoints: pl.DataFrame) -> pl.DataFrame:
    """Every step's loss with its tokens seen (a run's tokens per step from its checkpoints) and its moving average."""
    per_step = (
        checkpoints.filter(pl.col("step") > 0, pl.col("tokens").is_not_null())
        .group_by("run")
        .agg((pl.col("tokens") // pl.col("step")).first().alias("tokens_per_step"))
    )
    return (
        training_loss.join(per_step, on="run", how="left")
        .sort("run", "step")
        .select(
            "run",
            "step",
            (pl.col("step") * pl.col("tokens_per_step")).alias("tokens"),
            pl.col("loss").alias("step_loss"),
            pl.col("loss").rolling_mean(SMOOTHING_STEPS, min_samples=1).over("run").alias("step_loss_avg"),
        )
    )


def plot_training_curves(checkpoints: pl.DataFrame, points: pl.DataFrame, path, training_loss: pl.DataFrame | None = None):
    """Per run against tokens seen: the training loss of every step (training_loss table, faint, with its moving
    average), else of each checkpoint; the held-out loss and learning rate at every checkpoint."""
    at_checkpoints = (
        checkpoints.select("run", "step", "tokens", "flops", "train_loss", "lr")
        .join(points.select("run", "step", pl.col("loss").alias("heldout_loss"), "family"), on=["run", "step"], how="left")
        .sort("run", "step")
    )
    empty = pl.DataFrame(schema={"run": pl.String, "step": pl.Int64, "loss": pl.Float64})
    steps = training_loss_steps(empty if training_loss is None else training_loss, checkpoints)
    # the figure's data: one row per step and per checkpoint, the checkpoints' columns on their own steps
    data = (
        steps.join(at_checkpoints, on=["run", "step"], how="full", coalesce=True)
        .select(
            "run",
            "step",
            pl.coalesce("tokens", "tokens_right").alias("tokens"),
            *at_checkpoints.columns[3:],
            "step_loss",
            "step_loss_avg",
        )
        .sort("run", "step")
    )
    colors = _colors(data["run"])
    # constrained layout makes room for a legend of many columns (tight_layout let it cover the last panel)
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), layout="constrained")
    panels = (
        ("train_loss", "training loss (nats/token)"),
        ("heldout_loss", "held-out loss (mean over domains)"),
        ("lr", "learning rate at the checkpoint"),
    )
    every_step = set(steps["run"])
    for ax, (col, label) in zip(axes, panels):
        for run, g in data.group_by("run", maintain_order=True):
            run = run[0]
            if col == "train_loss" and run in every_step:
                g = g.filter(pl.col("step_loss").is_not_null())
                ax.plot(g["tokens"], g["step_loss"], lw=0.5, alpha=0.3, color=colors[run])
                ax.plot(g["tokens"], g["step_loss_avg"], lw=1.2, color=colors[run], label=run)
                continue
            g = g.filter(pl.col(col).is_not_null())
            if g.height:
                ax.plot(g["tokens"], g[col], "o-", ms=3, lw=1, color=colors[run], label=run)
        _log_x(ax)
        ax.set_xlabel("tokens seen")
        ax.set_ylabel(label)
    _legend_outside_of(axes, axes[-1], title="run")
    title = "Training curves per run"
    if every_step:
        title += f" (training loss: every step, faint, and its {SMOOTHING_STEPS}-step moving average)"
    fig.suptitle(title, fontsize=10)
    save_plot(fig, path, data)


def plot_domain_losses(domain_losses: pl.DataFrame, points: pl.DataFrame, path):
    """Each domain's held-out loss against training compute; a line joins one run's checkpoints."""
    data = (
        domain_losses.select("run", "step", "domain", "loss")
        .join(points.select("run", "step", "flops", "family"), on=["run", "step"])
        .sort("domain", "run", "step")
    )
    domains = sorted(data["domain"].unique())
    colors = _colors(data["family"])
    fig, axes = plt.subplots(1, len(domains), figsize=(3.2 * len(domains), 3.4), squeeze=False, sharey=True)
    for ax, domain in zip(axes[0], domains):
        d = data.filter(pl.col("domain") == domain)
        seen = set()
        for (run, fam), g in d.group_by("run", "family", maintain_order=True):
            ax.plot(g["flops"], g["loss"], "o-", ms=2.5, lw=0.8, alpha=0.8, color=colors[fam], label=None if fam in seen else fam)
            seen.add(fam)
        _log_x(ax)
        ax.set_title(domain, fontsize=9)
        ax.set_xlabel("training compute C (FLOPs)")
    axes[0][0].set_ylabel("held-out loss (nats/token)")
    _legend_outside(axes[0][-1], title="family")
    fig.suptitle("Domain losses vs compute (every checkpoint; colour: family = mixture/objective/lr)", fontsize=10)
    fig.tight_layout()
    save_plot(fig, path, data)


def plot_loss_vs_compute(points: pl.DataFrame, params: pl.DataFrame, preds: pl.DataFrame, path):
    """Every checkpoint's pre-training loss against its training compute, with stage-1 fits and held-out runs."""
    fig, ax = plt.subplots(figsize=(8, 4.5))
    families = sorted(points["family"].unique())
    colors = _colors(families)
    curves = []
    for fam in families:
        p = points.filter(pl.col("family") == fam)
        ax.scatter(p["flops"], p["loss"], s=10, alpha=0.35, color=colors[fam])
        last = p.group_by("run").agg(pl.all().sort_by("step").last())
        ax.scatter(last["flops"], last["loss"], s=40, color=colors[fam], label=f"{fam}: final checkpoints")
        fp = params.filter((pl.col("predictor") == "flp") & (pl.col("family") == fam) & (pl.col("stage") == "loss"))
        if fp.height:
            v = dict(zip(fp["param"], fp["value"]))
            c = np.geomspace(last["flops"].min(), last["flops"].max() * 1.5, 100)  # where it was fitted, and beyond
            fit = power_law(c / v["C0"], v["A"], v["alpha"], v["E"])
            ax.plot(c, fit, color=colors[fam], label=f"fit: E={v['E']:.2f} + A (C/C0)^-{v['alpha']:.2f}")
            curves.append(pl.DataFrame({"family": fam, "flops": c, "loss": fit, "kind": "stage-1 fit"}))
            held = preds.filter((pl.col("predictor") == "flp") & (pl.col("family") == fam)).head(1)
            if held.height:
                ax.scatter(
                    held["flops"],
                    held["loss_actual"],
                    marker="*",
                    s=180,
                    color=colors[fam],
                    edgecolor="k",
                    label=f"held out: {held['run'][0]}",
                )
                ax.scatter(held["flops"], held["loss_pred"], marker="x", s=60, color=colors[fam])
    _log_x(ax)
    ax.set_xlabel("training compute C (FLOPs)")
    ax.set_ylabel("pre-training loss (mean domain loss, nats/token)")
    ax.set_title("Stage 1: loss vs compute (star: held-out run, x: its predicted loss)", fontsize=10)
    _legend_outside(ax)
    data = pl.concat(
        [points.select("run", "step", "family", "flops", "loss").with_columns(kind=pl.lit("checkpoint")), *curves],
        how="diagonal_relaxed",
    )
    save_plot(fig, path, data)


def plot_score_vs_loss(scores: pl.DataFrame, preds: pl.DataFrame, path):
    """Task score against pre-training loss for every checkpoint, with FLP's predictions of held-out runs."""
    tasks = sorted(scores["task"].unique())
    colors = _colors(scores["family"])
    fig, axes = plt.subplots(1, len(tasks), figsize=(3.2 * len(tasks), 3.4), squeeze=False)
    flp = preds.filter(pl.col("predictor") == "flp")
    for ax, task in zip(axes[0], tasks):
        t = scores.filter(pl.col("task") == task)
        for fam in sorted(t["family"].unique()):
            f = t.filter(pl.col("family") == fam)
            ax.scatter(f["loss"], f["value"], s=8, alpha=0.6, color=colors[fam], label=fam)
            pr = flp.filter((pl.col("task") == task) & (pl.col("family") == fam))
            if pr.height:
                # a bootstrap percentile interval need not contain the point estimate: draw it as a bar
                ax.vlines(pr["loss_pred"], pr["score_lo"], pr["score_hi"], color=colors[fam], lw=1.5)
                ax.scatter(pr["loss_pred"], pr["score_pred"], marker="x", s=40, color=colors[fam])
                ax.scatter(pr["loss_actual"], pr["score_actual"], marker="*", s=90, color=colors[fam], edgecolor="k")
        ax.axhline(float(t["chance"].mean()), color="grey", ls=":", lw=1)
        ax.set_title(task, fontsize=9)
        ax.set_xlabel("pre-training loss")
    axes[0][0].set_ylabel("accuracy")
    _legend_outside(axes[0][-1], title="family")
    fig.suptitle("Stage 2: score vs loss (x: FLP prediction for the held-out run with 95% interval; star: actual)", fontsize=9)
    fig.tight_layout()
    data = pl.concat(
        [
            scores.select("run", "step", "task", "family", "loss", "value", "chance").with_columns(kind=pl.lit("checkpoint")),
            flp.select(
                "run", "task", "family", "loss_pred", "loss_actual", "score_pred", "score_lo", "score_hi", "score_actual"
            ).with_columns(kind=pl.lit("flp prediction")),
        ],
        how="diagonal_relaxed",
    )
    save_plot(fig, path, data)


def plot_predicted_vs_actual(preds: pl.DataFrame, path):
    """Every predictor's back-test: predicted vs actual score of the held-out runs, one panel per task."""
    tasks = sorted(preds["task"].unique())
    colors = _colors(preds["predictor"])
    markers = dict(zip(sorted(preds["family"].unique()), "os^Dv<>"))
    fig, axes = plt.subplots(1, len(tasks), figsize=(3.2 * len(tasks), 3.5), squeeze=False)
    rank = {p: i - (len(colors) - 1) / 2 for i, p in enumerate(sorted(colors))}  # side by side, not on top of each other
    for ax, task in zip(axes[0], tasks):
        t = preds.filter(pl.col("task") == task)
        values = t["score_actual"].to_list() + t["score_lo"].to_list() + t["score_hi"].to_list()
        lo, hi = min(values) - 0.03, max(values) + 0.03
        offsets = {p: r * 0.012 * (hi - lo) for p, r in rank.items()}
        ax.plot([lo, hi], [lo, hi], color="grey", lw=0.8, ls="--")
        for row in t.iter_rows(named=True):
            x = row["score_actual"] + offsets[row["predictor"]]
            ax.vlines(x, row["score_lo"], row["score_hi"], color=colors[row["predictor"]], lw=1.2)
            ax.scatter(x, row["score_pred"], marker=markers[row["family"]], s=22, color=colors[row["predictor"]])
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
        ax.set_title(task, fontsize=9)
        ax.set_xlabel("actual score of the held-out run")
    axes[0][0].set_ylabel("predicted score (95% interval)")
    handles = [plt.Line2D([], [], color=c, marker="o", ls="", label=p) for p, c in colors.items()]
    handles += [plt.Line2D([], [], color="k", marker=m, ls="", label=f) for f, m in markers.items()]
    axes[0][-1].legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    fig.suptitle("Back-test: predicted vs actual final score of each family's held-out run (dashed: exact)", fontsize=9)
    fig.tight_layout()
    save_plot(
        fig,
        path,
        preds.select(
            "predictor", "family", "task", "run", "score_actual", "score_pred", "score_lo", "score_hi", "abs_error", "covered"
        ),
    )


def plot_pairwise_accuracy(results: pl.DataFrame, path):
    """Seed 000's bar chart: each proxy's pairwise accuracy with its bootstrap interval, one panel per task group."""
    groups = list(dict.fromkeys(results["task_group"].to_list()))
    # proxies in one order for every panel: by accuracy on the first group (the learned comparator on top)
    first = results.filter(pl.col("task_group") == groups[0]).sort("accuracy")
    order = first["proxy"].to_list()
    colors = _colors(results["family"])
    height = 0.22 * len(order) + 1.2
    fig, axes = plt.subplots(1, len(groups), figsize=(min(2.6 * len(groups) + 2.5, 15), height), squeeze=False, sharey=True)
    y = {p: i for i, p in enumerate(order)}
    for ax, group in zip(axes[0], groups):
        g = results.filter(pl.col("task_group") == group)
        g = g.filter(pl.col("proxy").is_in(order))
        ys = [y[p] for p in g["proxy"]]
        err = np.vstack([(g["accuracy"] - g["ci_low"]).fill_nan(0).clip(0), (g["ci_high"] - g["accuracy"]).fill_nan(0).clip(0)])
        ax.barh(ys, g["accuracy"], color=[colors[f] for f in g["family"]], xerr=err, error_kw={"lw": 0.6, "capsize": 1.5})
        ax.axvline(0.5, color="k", lw=0.8, ls=":")
        ax.set_xlim(0, 1)
        ax.set_title(f"task group '{group}'", fontsize=9)
        ax.set_xlabel("pairwise accuracy")
    axes[0][0].set_yticks(range(len(order)), order, fontsize=7)
    handles = [plt.Rectangle((0, 0), 1, 1, color=c, label=f) for f, c in colors.items()]
    axes[0][-1].legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), title="proxy family")
    fig.suptitle("Which of two models is better after SFT: accuracy of each proxy over all pairs (dotted: chance)", fontsize=9)
    fig.tight_layout()
    save_plot(
        fig,
        path,
        results.select(
            "task_group", "proxy", "family", "accuracy", "ci_low", "ci_high", "heldout_mean", "heldout_std", "n_pairs", "n_ties"
        ),
    )


def gap_proxies(results: pl.DataFrame, gap: pl.DataFrame, group: str, n_best: int = 3) -> list[str]:
    """The proxies the accuracy-vs-gap plot draws for a group: perplexity, the best few, and the learned
    comparator where the gap table has it (its accuracy is out-of-split, not binned by gap in every version)."""
    g = results.filter((pl.col("task_group") == group) & pl.col("accuracy").is_finite())
    best = g.filter(~pl.col("proxy").is_in(["inv_ppl", "learned"])).sort("accuracy", descending=True)["proxy"].head(n_best)
    binned = set(gap.filter(pl.col("task_group") == group)["proxy"])
    return [p for p in ["inv_ppl", *best, "learned"] if p in binned]


def plot_pairwise_gap(results: pl.DataFrame, gap: pl.DataFrame, path):
    """Pairwise accuracy per bin of the true post-SFT gap between the two models, for a few proxies."""
    groups = list(dict.fromkeys(results["task_group"].to_list()))
    fig, axes = plt.subplots(1, len(groups), figsize=(min(3.0 * len(groups), 15), 3.4), squeeze=False, sharey=True)
    drawn = []
    for ax, group in zip(axes[0], groups):
        g = gap.filter(pl.col("task_group") == group)
        for i, proxy in enumerate(gap_proxies(results, gap, group)):
            p = g.filter(pl.col("proxy") == proxy).sort("bin")
            if p.height:
                style = {"inv_ppl": "k--", "learned": "r-"}.get(proxy, "-")
                ax.plot(
                    p["gap_mean"],
                    p["accuracy"],
                    style,
                    marker="o",
                    ms=3,
                    lw=1,
                    label=proxy,
                    **({} if proxy in ("inv_ppl", "learned") else {"color": f"C{i}"}),
                )
                drawn.append(p)
        ax.axhline(0.5, color="grey", lw=0.8, ls=":")
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(f"task group '{group}'", fontsize=9)
        ax.set_xlabel("true post-SFT gap (bin mean)")
        ax.legend(fontsize=6)
    axes[0][0].set_ylabel("pairwise accuracy in the bin")
    fig.suptitle(
        "Accuracy vs true gap: 1/perplexity (dashed), the three most accurate single proxies"
        " (and the learned comparator, red, where binned)",
        fontsize=9,
    )
    fig.tight_layout()
    data = pl.concat(drawn) if drawn else gap.head(0)
    save_plot(fig, path, data)


# --- figures of the fits that need per-example scores or SFT labels (transfer, relatedness, selection) ---
def plot_transfer(pairs: pl.DataFrame, corr: pl.DataFrame, task: str, path):
    """Zero-shot vs post-SFT accuracy of one task, one panel per prompt; a line joins a run's checkpoints."""
    t = pairs.filter(pl.col("task") == task)
    prompts = sorted(t["prompt"].unique())
    fig, axes = plt.subplots(1, max(len(prompts), 1), figsize=(4 * max(len(prompts), 1), 3.6), squeeze=False)
    for ax, prompt in zip(axes[0], prompts):
        p = t.filter(pl.col("prompt") == prompt)
        for (method, data), color in zip(sorted(p.select("sft_method", "sft_data").unique().iter_rows()), plt.cm.tab10.colors):
            g = p.filter((pl.col("sft_method") == method) & (pl.col("sft_data") == data))
            r = corr.filter(
                (pl.col("task") == task)
                & (pl.col("prompt") == prompt)
                & (pl.col("sft_method") == method)
                & (pl.col("sft_data") == data)
                & (pl.col("scope") == "across_runs")
            )
            label = f"{method}/{data}" + (f": r={r['pearson_r'][0]:.2f} (p={r['pearson_p'][0]:.2g})" if r.height else "")
            for i, (_, run) in enumerate(g.group_by("run", maintain_order=True)):
                ax.plot(
                    run["zero_shot"],
                    run["fine_tuned"],
                    "o-",
                    ms=4,
                    lw=0.8,
                    alpha=0.7,
                    color=color,
                    label=label if i == 0 else None,
                )
        ax.set_title(f"{task}, prompt '{prompt}'", fontsize=9)
        ax.set_xlabel("zero-shot accuracy")
        ax.legend(fontsize=6)
    axes[0][0].set_ylabel("accuracy after SFT")
    fig.suptitle("Zero-shot vs fine-tuned accuracy (r: across runs' last fine-tuned checkpoints)", fontsize=9)
    save_plot(fig, path, t)


def plot_task_relatedness(matrix: pl.DataFrame, path, quantity: str = "mean NLL"):
    """Heat map of the tasks' trajectory correlations (of `quantity` over checkpoints), p-values in the cells."""
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
    fig.colorbar(im, ax=ax, label=f"Pearson r of {quantity} over checkpoints")
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
    fig.suptitle(
        "Point relatedness: MDS of 1 - r of NLL trajectories (colour: polynomial-coefficient groups)", fontsize=9, y=1.06
    )
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
