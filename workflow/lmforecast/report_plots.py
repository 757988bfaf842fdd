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

from lmforecast.flp import power_law  # noqa: E402
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


def _legend_outside(ax, **kw):
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0, **kw)


def plot_training_curves(checkpoints: pl.DataFrame, points: pl.DataFrame, path):
    """Per run: training loss, held-out loss and learning rate at every checkpoint, against tokens seen."""
    data = (checkpoints.select("run", "step", "tokens", "flops", "train_loss", "lr")
            .join(points.select("run", "step", pl.col("loss").alias("heldout_loss"), "family"), on=["run", "step"], how="left")
            .sort("run", "step"))
    colors = _colors(data["run"])
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    panels = (("train_loss", "training loss (nats/token)"), ("heldout_loss", "held-out loss (mean over domains)"),
              ("lr", "learning rate at the checkpoint"))
    for ax, (col, label) in zip(axes, panels):
        for run, g in data.group_by("run", maintain_order=True):
            g = g.filter(pl.col(col).is_not_null())
            if g.height:
                ax.plot(g["tokens"], g[col], "o-", ms=3, lw=1, color=colors[run[0]], label=run[0])
        _log_x(ax)
        ax.set_xlabel("tokens seen")
        ax.set_ylabel(label)
    _legend_outside(axes[-1], title="run")
    fig.suptitle("Training curves per run (one point per checkpoint)", fontsize=10)
    fig.tight_layout()
    save_plot(fig, path, data)


def plot_domain_losses(domain_losses: pl.DataFrame, points: pl.DataFrame, path):
    """Each domain's held-out loss against training compute; a line joins one run's checkpoints."""
    data = (domain_losses.select("run", "step", "domain", "loss")
            .join(points.select("run", "step", "flops", "family"), on=["run", "step"]).sort("domain", "run", "step"))
    domains = sorted(data["domain"].unique())
    colors = _colors(data["family"])
    fig, axes = plt.subplots(1, len(domains), figsize=(3.2 * len(domains), 3.4), squeeze=False, sharey=True)
    for ax, domain in zip(axes[0], domains):
        d = data.filter(pl.col("domain") == domain)
        seen = set()
        for (run, fam), g in d.group_by("run", "family", maintain_order=True):
            ax.plot(g["flops"], g["loss"], "o-", ms=2.5, lw=0.8, alpha=0.8, color=colors[fam],
                    label=None if fam in seen else fam)
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
                ax.scatter(held["flops"], held["loss_actual"], marker="*", s=180, color=colors[fam], edgecolor="k",
                           label=f"held out: {held['run'][0]}")
                ax.scatter(held["flops"], held["loss_pred"], marker="x", s=60, color=colors[fam])
    _log_x(ax)
    ax.set_xlabel("training compute C (FLOPs)")
    ax.set_ylabel("pre-training loss (mean domain loss, nats/token)")
    ax.set_title("Stage 1: loss vs compute (star: held-out run, x: its predicted loss)", fontsize=10)
    _legend_outside(ax)
    data = pl.concat([points.select("run", "step", "family", "flops", "loss").with_columns(kind=pl.lit("checkpoint")),
                      *curves], how="diagonal_relaxed")
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
    fig.suptitle("Stage 2: score vs loss (x: FLP prediction for the held-out run with 95% interval; star: actual)",
                 fontsize=9)
    fig.tight_layout()
    data = pl.concat([scores.select("run", "step", "task", "family", "loss", "value", "chance").with_columns(kind=pl.lit("checkpoint")),
                      flp.select("run", "task", "family", "loss_pred", "loss_actual", "score_pred", "score_lo", "score_hi",
                                 "score_actual").with_columns(kind=pl.lit("flp prediction"))], how="diagonal_relaxed")
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
    save_plot(fig, path, preds.select("predictor", "family", "task", "run", "score_actual", "score_pred", "score_lo",
                                      "score_hi", "abs_error", "covered"))


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
    fig.suptitle("Which of two models is better after SFT: accuracy of each proxy over all pairs (dotted: chance)",
                 fontsize=9)
    fig.tight_layout()
    save_plot(fig, path, results.select("task_group", "proxy", "family", "accuracy", "ci_low", "ci_high", "heldout_mean",
                                        "heldout_std", "n_pairs", "n_ties"))


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
                ax.plot(p["gap_mean"], p["accuracy"], style, marker="o", ms=3, lw=1, label=proxy,
                        **({} if proxy in ("inv_ppl", "learned") else {"color": f"C{i}"}))
                drawn.append(p)
        ax.axhline(0.5, color="grey", lw=0.8, ls=":")
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(f"task group '{group}'", fontsize=9)
        ax.set_xlabel("true post-SFT gap (bin mean)")
        ax.legend(fontsize=6)
    axes[0][0].set_ylabel("pairwise accuracy in the bin")
    fig.suptitle("Accuracy vs true gap: 1/perplexity (dashed), the three most accurate single proxies"
                 " (and the learned comparator, red, where binned)", fontsize=9)
    fig.tight_layout()
    data = pl.concat(drawn) if drawn else gap.head(0)
    save_plot(fig, path, data)
