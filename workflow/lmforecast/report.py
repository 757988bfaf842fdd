"""results/report/: plots (PNG) and a self-contained index.html of the sweep and its fits."""

import base64
import html
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import polars as pl  # noqa: E402

from lmforecast.flp import power_law, checkpoint_points, select_scores  # noqa: E402
from lmforecast.io import atomic_path, write_text  # noqa: E402


def _save(fig, path):
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    plt.close(fig)


def plot_loss_vs_compute(points: pl.DataFrame, params: pl.DataFrame, preds: pl.DataFrame, path):
    """Every checkpoint's pre-training loss against its training compute, with stage-1 fits."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    families = sorted(points["family"].unique())
    colors = dict(zip(families, plt.cm.tab10.colors))
    for fam in families:
        p = points.filter(pl.col("family") == fam)
        ax.scatter(p["flops"], p["loss"], s=10, alpha=0.35, color=colors[fam])
        last = p.group_by("run").agg(pl.all().sort_by("step").last())
        ax.scatter(last["flops"], last["loss"], s=40, color=colors[fam], label=f"{fam}: final checkpoints")
        fp = params.filter((pl.col("predictor") == "flp") & (pl.col("family") == fam) & (pl.col("stage") == "loss"))
        if fp.height:
            v = dict(zip(fp["param"], fp["value"]))
            c = np.geomspace(last["flops"].min(), last["flops"].max() * 1.5, 100)  # where it was fitted, and beyond
            ax.plot(c, power_law(c / v["C0"], v["A"], v["alpha"], v["E"]), color=colors[fam],
                    label=f"fit: E={v['E']:.2f} + A (C/C0)^-{v['alpha']:.2f}")
            held = preds.filter((pl.col("predictor") == "flp") & (pl.col("family") == fam)).head(1)
            if held.height:
                ax.scatter(held["flops"], held["loss_actual"], marker="*", s=180, color=colors[fam], edgecolor="k",
                           label=f"held out: {held['run'][0]}")
    ax.set_xscale("log")
    ax.set_xlabel("training compute C (FLOPs)")
    ax.set_ylabel("pre-training loss (mean domain loss, nats/token)")
    ax.set_title("Stage 1: loss vs compute")
    ax.legend(fontsize=7)
    _save(fig, path)


def plot_score_vs_loss(scores: pl.DataFrame, preds: pl.DataFrame, path):
    """Task score against pre-training loss for every checkpoint, with predictions of held-out runs."""
    tasks = sorted(scores["task"].unique())
    fig, axes = plt.subplots(1, len(tasks), figsize=(3.4 * len(tasks), 3.4), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        t = scores.filter(pl.col("task") == task)
        for fam, color in zip(sorted(t["family"].unique()), plt.cm.tab10.colors):
            f = t.filter(pl.col("family") == fam)
            ax.scatter(f["loss"], f["value"], s=8, alpha=0.6, color=color, label=fam)
            pr = preds.filter((pl.col("task") == task) & (pl.col("family") == fam) & (pl.col("predictor") == "flp"))
            if pr.height:
                # a bootstrap percentile interval need not contain the point estimate: draw it as a bar
                ax.vlines(pr["loss_pred"], pr["score_lo"], pr["score_hi"], color=color, lw=1.5)
                ax.scatter(pr["loss_pred"], pr["score_pred"], marker="x", s=30, color=color)
        ax.axhline(float(t["chance"].mean()), color="grey", ls=":", lw=1)
        ax.set_title(task)
        ax.set_xlabel("pre-training loss")
    axes[0][0].set_ylabel("accuracy")
    axes[0][0].legend(fontsize=6)
    fig.suptitle("Stage 2: score vs loss (x: FLP prediction for the held-out run, 95% interval)", fontsize=9)
    _save(fig, path)


def _img(path):
    data = base64.b64encode(Path(path).read_bytes()).decode()
    return f'<img alt="{html.escape(Path(path).stem)}" src="data:image/png;base64,{data}" style="max-width:100%">'


def _table(df: pl.DataFrame) -> str:
    def cell(v):
        if isinstance(v, float):
            return "" if math.isnan(v) else f"{v:.4g}"
        return html.escape("" if v is None else str(v))

    head = "".join(f"<th>{html.escape(c)}</th>" for c in df.columns)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>" for row in df.iter_rows())
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def leaderboard(preds: pl.DataFrame) -> str:
    """Predictor x task table of mean absolute error, the best per task in bold."""
    if preds.height == 0:
        return "<p>No predictor could be fitted (see results/fits/scaling_report.txt).</p>"
    err = preds.group_by("predictor", "task").agg(pl.col("abs_error").mean())
    cover = preds.group_by("predictor").agg(pl.col("covered").cast(float).mean().alias("coverage"))
    tasks = sorted(err["task"].unique())
    best = {t: err.filter(pl.col("task") == t).sort("abs_error")["predictor"][0] for t in tasks}
    head = "<tr><th>predictor</th>" + "".join(f"<th>{html.escape(t)}</th>" for t in tasks) + "<th>mean</th><th>intervals cover</th></tr>"
    body = ""
    for row in err.group_by("predictor").agg(pl.col("abs_error").mean()).sort("abs_error").iter_rows(named=True):
        name = row["predictor"]
        cells = ""
        for t in tasks:
            v = err.filter((pl.col("predictor") == name) & (pl.col("task") == t))["abs_error"]
            text = f"{v[0]:.3f}" if v.len() else "not fitted"  # why: results/fits/scaling_report.txt
            cells += f"<td><b>{text}</b></td>" if best[t] == name else f"<td>{text}</td>"
        coverage = cover.filter(pl.col("predictor") == name)["coverage"][0]
        body += f"<tr><td>{html.escape(name)}</td>{cells}<td>{row['abs_error']:.3f}</td><td>{coverage:.0%}</td></tr>"
    return f"<table><thead>{head}</thead><tbody>{body}</tbody></table>"


def build_report(tables: dict, params: pl.DataFrame, preds: pl.DataFrame, fit_cfg: dict, out_dir):
    out_dir = Path(out_dir)
    points = checkpoint_points(tables["runs"], tables["checkpoints"], tables["domain_losses"])
    scores = select_scores(tables["task_scores"], fit_cfg).join(points, on=["run", "step"])
    plot_loss_vs_compute(points, params, preds, out_dir / "loss_vs_compute.png")
    plot_score_vs_loss(scores, preds, out_dir / "score_vs_loss.png")
    runs = tables["runs"].join(
        points.group_by("run").agg(pl.all().sort_by("step").last()).select("run", "flops", "loss"), on="run").sort("flops")
    final_scores = (tables["task_scores"].filter((pl.col("metric") == "acc")).join(
        tables["checkpoints"].group_by("run").agg(pl.col("step").max()), on=["run", "step"])
        .group_by("run", "task").agg(pl.col("value").max().alias("best_acc")).pivot(on="task", index="run", values="best_acc").sort("run"))
    sft = (tables["sft_scores"].filter(pl.col("metric") == "acc")
           .pivot(on="task", index=["run", "step", "sft_method", "sft_data"], values="value").sort("run", "sft_method", "sft_data"))
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>lmforecast report</title>
<style>body{{font-family:sans-serif;max-width:1200px;margin:auto;padding:1em}}table{{border-collapse:collapse;font-size:12px;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:2px 6px;text-align:right}}th{{background:#eee}}figcaption{{color:#444;font-size:13px}}</style></head><body>
<h1>lmforecast report</h1>
<h2>Scaling chain (FLP): compute &rarr; loss &rarr; score</h2>
<figure>{_img(out_dir / "loss_vs_compute.png")}<figcaption>Pre-training loss (mean of the held-out domain losses) of every
checkpoint against its training compute; large dots are final checkpoints, lines the stage-1 power-law fit per family
(mixture/objective/learning rate) on all but the largest-compute run (star), which is predicted.</figcaption></figure>
<figure>{_img(out_dir / "score_vs_loss.png")}<figcaption>Task accuracy ({html.escape(fit_cfg['metric'])}, {fit_cfg['shots']}-shot,
first prompt) of every checkpoint against its pre-training loss; crosses are the FLP predictions for the held-out runs with
95% intervals from a bootstrap over the training runs (both stages refitted); dotted: chance.</figcaption></figure>
<h3>Leaderboard: back-test error of every predictor</h3>
<p>Mean absolute error of the predicted held-out score (over families); best per task in bold. Intervals: the
share of held-out predictions whose 95% bootstrap interval contains the actual score.</p>{leaderboard(preds)}
<h3>Back-test: held-out runs predicted from their compute</h3>{_table(preds)}
<h3>Fitted parameters (stderr: lmfit's, from the Jacobian; stderr_boot: bootstrap over runs)</h3>{_table(params)}
<h2>Runs</h2>{_table(runs)}
<h3>Final-checkpoint accuracy (best prompt and shots)</h3>{_table(final_scores)}
<h3>After SFT (accuracy on the evaluation split)</h3>{_table(sft)}
</body></html>"""
    write_text(page, out_dir / "index.html")
