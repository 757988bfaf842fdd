"""docs/pythia_scaling.png: the Pythia example's `direct` back-test drawn against compute.

Reads the tables and fit of a finished run of config/examples/pythia-evals.yaml:
    python docs/pythia_scaling.py RESULTS_DIR docs/pythia_scaling.png
Per task: each run's final 0-shot accuracy against training compute (70M-12B), the logit line
`direct` fits per family on 70M-2.8B, and its prediction (95% interval, fit.scaling.interval) at 6.9B and 12B.
The fit's own figures (results/report/) show predicted against actual; this one shows the scaling.
"""

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import polars as pl
from scipy.special import expit

FAMILIES = {"pile/clm/lr=?": ("standard", "tab:blue", "o"), "pile-deduped/clm/lr=?": ("deduped", "tab:orange", "s")}


def main(results: Path, out: Path):
    ck = pl.read_parquet(results / "tables/checkpoints.parquet")
    final = ck.group_by("run").agg(pl.col("step").max(), pl.col("flops").sort_by("step").last())
    runs = pl.read_parquet(results / "tables/runs.parquet").select("run", "mixture")
    scores = pl.read_parquet(results / "tables/task_scores.parquet").filter((pl.col("metric") == "acc") & (pl.col("shots") == 0))
    pts = scores.join(final, on=["run", "step"]).join(runs, on="run")
    params = pl.read_parquet(results / "fits/scaling_params.parquet").filter(pl.col("predictor") == "direct")
    preds = pl.read_parquet(results / "fits/scaling_predictions.parquet").filter(pl.col("predictor") == "direct")
    tasks = sorted(preds["task"].unique())
    fig, axes = plt.subplots(2, 4, figsize=(13, 6), sharex=True)
    grid = np.geomspace(final["flops"].min(), final["flops"].max(), 100)
    for ax, task in zip(axes.flat, tasks):
        for family, (label, color, marker) in FAMILIES.items():
            mixture = family.split("/")[0]
            p = pts.filter((pl.col("task") == task) & (pl.col("mixture") == mixture))
            held = preds.filter((pl.col("task") == task) & (pl.col("family") == family))
            fitted = p.filter(~pl.col("run").is_in(held["run"].to_list()))
            w = dict(params.filter((pl.col("task") == task) & (pl.col("family") == family)).select("param", "value").iter_rows())
            ax.plot(grid, expit(w["intercept"] + w["slope"] * np.log10(grid)), color=color, lw=1)
            ax.scatter(fitted["flops"], fitted["value"], color=color, marker=marker, s=18, label=f"{label}: fitted")
            ax.scatter(
                held["flops"],
                held["score_actual"],
                facecolors="none",
                edgecolors=color,
                marker=marker,
                s=30,
                label=f"{label}: held out (actual)",
            )
            err = [held["score_pred"] - held["score_lo"], held["score_hi"] - held["score_pred"]]
            ax.errorbar(held["flops"], held["score_pred"], yerr=err, fmt="x", color=color, ms=5, capsize=2)
        mare = float(preds.filter(pl.col("task") == task)["rel_error"].abs().mean())
        ax.set_title(f"{task} (held-out error {100 * mare:.1f}%)", fontsize=9)
        ax.set_xscale("log")
    for ax in axes[1]:
        ax.set_xlabel("training compute (FLOPs)")
    for ax in axes[:, 0]:
        ax.set_ylabel("0-shot accuracy")
    axes.flat[0].legend(fontsize=7, loc="upper left")
    fig.suptitle(
        "Pythia: final accuracy against compute; line: direct (logit line) fitted on 70M-2.8B; x: its prediction, 95% interval",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(out, dpi=80)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
