"""The README's tables of data decisions from small runs: fit_decision's output on a public example, as markdown.

    python resources/public/decision_table.py RESULTS_DIR [SCALES]

RESULTS_DIR is the example's results/ (results/fits/decision_accuracy.parquet and results/tables/runs.parquet).
Rows: each smaller scale at which every recipe has a run whose label matches the regex SCALES (default: all),
by each proxy (acc@0shot and inv_ppl), their mean over every such scale, and fit_scaling's extrapolations; columns: per target scale, the mean decision accuracy
over the tasks (task groups such as avg46 apart) and over the task groups.
"""

import os
import re
import sys

import polars as pl


def label(names: list[str]) -> str:
    """What the run names at one scale share (their common prefix or suffix): 11M-x1, pythia-70m."""
    prefix, suffix = os.path.commonprefix(names), os.path.commonprefix([n[::-1] for n in names])[::-1]
    return max(prefix, suffix, key=len).strip("-")


def main(results, shown=".", proxies=("acc@0shot", "inv_ppl")):
    d = pl.read_parquet(f"{results}/fits/decision_accuracy.parquet")
    runs = pl.read_parquet(f"{results}/tables/runs.parquet")
    groups = [t for t in d["task"].unique().to_list() if t.startswith("avg")]
    n_recipes = d["n_recipes"].max()
    scale_of = {}
    for r in runs.iter_rows(named=True):  # the scale names fit_decision wrote, from the runs' columns
        for s in set(d["scale"]) | set(d["target_scale"]):
            if s != "extrapolated" and all(f"{kv.split('=')[0]}={r[kv.split('=')[0]]}" == kv for kv in s.split(",")):
                scale_of.setdefault(s, []).append(r["run"])
    names = {s: label(v) for s, v in scale_of.items()} | {"extrapolated": "extrapolated"}
    targets = d.select("target_scale", "flops").group_by("target_scale").agg(pl.col("flops").max()).sort("flops")
    targets = targets["target_scale"].to_list()
    full = d.filter(pl.col("n_recipes") == n_recipes)  # scales where every recipe has a run
    proxies = [p for p in proxies if p in set(full["proxy"])]

    def cell(rows):
        tasks = rows.filter(~pl.col("task").is_in(groups) & pl.col("accuracy").is_not_nan())
        out = f"{tasks['accuracy'].mean():.2f} ({tasks.height})" if tasks.height else "-"
        for g in groups:
            a = rows.filter((pl.col("task") == g) & pl.col("accuracy").is_not_nan())
            out += f" | {a['accuracy'].mean():.2f}" if a.height else " | -"
        return out

    head = "| decided at | by | " + " | ".join(
        f"{names.get(t, t)}: tasks (n)" + "".join(f" | {names.get(t, t)}: {g}" for g in groups) for t in targets
    )
    print(head + " |")
    print("|" + "---|" * head.count("|"))
    scales = full.filter(pl.col("scale") != "extrapolated").group_by("scale").agg(pl.col("flops").first()).sort("flops")
    for proxy in proxies:
        for s in (s for s in scales["scale"] if re.search(shown, names[s])):
            rows = [
                cell(full.filter((pl.col("scale") == s) & (pl.col("proxy") == proxy) & (pl.col("target_scale") == t)))
                for t in targets
            ]
            print(f"| {names[s]} | {proxy} | " + " | ".join(rows) + " |")
    for proxy in proxies:
        rows = []
        for t in targets:
            at = full.filter((pl.col("scale") != "extrapolated") & (pl.col("proxy") == proxy) & (pl.col("target_scale") == t))
            rows.append(cell(at))
        print(f"| every smaller scale, mean | {proxy} | " + " | ".join(rows) + " |")
    for proxy in sorted(full.filter(pl.col("scale") == "extrapolated")["proxy"].unique()):
        rows = [
            cell(full.filter((pl.col("scale") == "extrapolated") & (pl.col("proxy") == proxy) & (pl.col("target_scale") == t)))
            for t in targets
        ]
        print(f"| extrapolated | {proxy} | " + " | ".join(rows) + " |")
    best = full.unique(["task", "target_scale"])
    for t in targets:
        at = best.filter(pl.col("target_scale") == t)
        wins = at.filter(~pl.col("task").is_in(groups))["best"].value_counts().sort("count", descending=True).rows()
        print(
            f"\nbest at {names[t]}: per task {wins}; "
            + ", ".join(f"{g}: {at.filter(pl.col('task') == g)['best'][0]}" for g in groups)
        )


if __name__ == "__main__":
    main(*sys.argv[1:3])
