"""The embedded default's effects, from a finished run's tables (issue 24's must-shows), printed and as JSON.

    python scripts/default_effects.py [RESULTS_DIR] [--json OUT.json]

- SFT gain: post-SFT accuracy minus zero-shot accuracy of the same checkpoint, task and prompt (the prompt
  SFT trains and scores with), per task, SFT method and SFT data; mean over all runs and over the runs that
  learned the task's domain (zero-shot accuracy on the task's first template, the pre-training text's own
  form, above chance + `--learned`).
- Per run's last fine-tuned checkpoint and task: zero-shot accuracy on the first template / on SFT's prompt ->
  post-SFT accuracy (the README's table).
- Post-SFT questions per task, and per pairwise task group the share of model pairs whose post-SFT difference
  exceeds twice its standard error (paired over the same questions; the group's score is the mean of its
  tasks'); with the pairwise fit's SFT method and data.
- Zero-shot accuracy of the largest runs (largest size, largest budget) per task and prompt, against chance.
- Each study's finding, from results/fits/: the scaling back-test (mean absolute error and interval coverage
  per predictor), pairwise accuracy of perplexity (95% interval) and of the learned comparator (held out,
  mean and sd over splits), the transfer correlations (zero-shot vs post-SFT across runs, with p-values),
  and SELECT against random at each budget.
"""

import argparse
import itertools
import json
from pathlib import Path

import numpy as np
import polars as pl
import yaml

CHANCE = {"fact_qa": 0.25, "arith_mc": 0.25, "var_track": 0.25, "sentiment": 0.5}


def sft_prompt(cfg: dict, task: str, tasks_dir: Path) -> str:
    prompt = cfg["sft"].get("prompt")
    if isinstance(prompt, dict):
        prompt = prompt.get(task)
    return prompt or next(iter(yaml.safe_load(open(tasks_dir / f"{task}.yaml"))["prompts"]))


def first_prompt(task: str, tasks_dir: Path) -> str:
    return next(iter(yaml.safe_load(open(tasks_dir / f"{task}.yaml"))["prompts"]))


def paired(task_scores: pl.DataFrame, sft_scores: pl.DataFrame, cfg: dict, tasks_dir: Path, learned: float) -> pl.DataFrame:
    """Per fine-tuned checkpoint, task, SFT method and data: post-SFT accuracy (value), zero-shot on SFT's prompt
    (value_zero) and on the first template (value_native), the gain and whether the run learned the domain."""
    zero = task_scores.filter((pl.col("metric") == "acc") & (pl.col("shots") == 0))
    tuned = sft_scores.filter(pl.col("metric") == "acc")
    prompts = pl.DataFrame({"task": list(CHANCE), "prompt": [sft_prompt(cfg, t, tasks_dir) for t in CHANCE]})
    native = pl.DataFrame({"task": list(CHANCE), "prompt": [first_prompt(t, tasks_dir) for t in CHANCE]})
    native = zero.join(native, on=["task", "prompt"]).select("run", "step", "task", pl.col("value").alias("value_native"))
    return (
        tuned.join(zero.join(prompts, on=["task", "prompt"]), on=["run", "step", "task"], suffix="_zero")
        .join(native, on=["run", "step", "task"])
        .with_columns(chance=pl.col("task").replace_strict(CHANCE))
        .with_columns(gain=pl.col("value") - pl.col("value_zero"))
        .with_columns(learned=pl.col("value_native") > pl.col("chance") + learned)
    )


def sft_gains(both: pl.DataFrame) -> pl.DataFrame:
    return (
        both.group_by("task", "sft_method", "sft_data")
        .agg(
            runs=pl.len(),
            zero_shot=pl.col("value_zero").mean(),
            zero_shot_native=pl.col("value_native").mean(),
            post_sft=pl.col("value").mean(),
            gain_all=pl.col("gain").mean(),
            learned_runs=pl.col("learned").sum(),
            gain_learned=pl.col("gain").filter(pl.col("learned")).mean(),
            questions=pl.col("n").min(),
        )
        .sort("task", "sft_method", "sft_data")
    )


def per_run(both: pl.DataFrame) -> pl.DataFrame:
    """The README's table: per run's last fine-tuned checkpoint and task, 'first-template zero-shot / SFT-template
    zero-shot -> post-SFT' (the pairwise fit's SFT method and data are not singled out: one row per method and data)."""
    last = both.group_by("run").agg(pl.col("step").max())
    cell = pl.format(
        "{} / {} -> {}",
        *(pl.col(c).round(2).cast(pl.String).str.pad_end(4, "0") for c in ("value_native", "value_zero", "value")),
    )
    return (
        both.join(last, on=["run", "step"])
        .with_columns(cell=cell)
        .pivot("task", index=["run", "sft_method", "sft_data"], values="cell")
        .sort("run", "sft_method", "sft_data")
    )


def separated_pairs(sft_example_scores: pl.DataFrame, cfg: dict) -> pl.DataFrame:
    pw = cfg["fit"]["pairwise"]
    ex = sft_example_scores.filter((pl.col("sft_method") == pw["sft_method"]) & (pl.col("sft_data") == pw["sft_data"]))
    last = ex.group_by("run").agg(pl.col("step").max())
    ex = ex.join(last, on=["run", "step"])
    rows = []
    for group in pw["task_groups"]:
        per_task = {}
        for task in group["tasks"]:
            wide = ex.filter(pl.col("task") == task).pivot("run", index="example", values="correct").sort("example")
            per_task[task] = {r: wide[r].cast(float).to_numpy() for r in wide.columns if r != "example"}
        runs = sorted(set.intersection(*(set(v) for v in per_task.values())))
        separated, pairs = 0, 0
        for a, b in itertools.combinations(runs, 2):
            diffs = [per_task[t][a] - per_task[t][b] for t in group["tasks"]]
            gap = np.mean([d.mean() for d in diffs])
            se = np.sqrt(sum(d.var(ddof=1) / len(d) for d in diffs)) / len(diffs)
            pairs += 1
            separated += bool(abs(gap) > 2 * se)
        n = min(len(next(iter(per_task[t].values()))) for t in group["tasks"])
        rows.append(
            {"group": group["name"], "pairs": pairs, "separated": separated, "share": separated / max(pairs, 1), "questions": n}
        )
    return pl.DataFrame(rows)


def largest_zero_shot(runs: pl.DataFrame, task_scores: pl.DataFrame) -> pl.DataFrame:
    top = runs.filter(pl.col("n_params") == pl.col("n_params").max())
    top = top.filter(pl.col("tokens_planned") == top["tokens_planned"].max())["run"].to_list()
    zero = task_scores.filter((pl.col("metric") == "acc") & (pl.col("shots") == 0) & pl.col("run").is_in(top))
    last = zero.group_by("run").agg(pl.col("step").max())
    return (
        zero.join(last, on=["run", "step"])
        .with_columns(above_chance=pl.col("value") - pl.col("task").replace_strict(CHANCE))
        .select("run", "task", "prompt", "value", "above_chance", "n")
        .sort("task", "prompt", "run")
    )


def studies(fits: Path) -> dict:
    """The fits' headline figures (a fit not run is left out)."""
    out = {}
    if (fits / "scaling_predictions.parquet").exists():
        pred = pl.read_parquet(fits / "scaling_predictions.parquet")
        out["scaling"] = (
            pred.group_by("predictor")
            .agg(n=pl.len(), mae=pl.col("abs_error").mean(), coverage=pl.col("covered").mean())
            .sort("mae")
        )
    if (fits / "pairwise.parquet").exists():
        out["pairwise"] = (
            pl.read_parquet(fits / "pairwise.parquet")
            .filter(pl.col("proxy").is_in(["inv_ppl", "learned"]))
            .select("task_group", "proxy", "accuracy", "ci_low", "ci_high", "heldout_mean", "heldout_std", "n_pairs", "n_ties")
            .sort("task_group", "proxy")
        )
    if (fits / "transfer.parquet").exists():
        out["transfer"] = (
            pl.read_parquet(fits / "transfer.parquet")
            .select(
                "task", "prompt", "sft_method", "sft_data", "scope", "n", "pearson_r", "pearson_p", "spearman_rho", "spearman_p"
            )
            .sort("task", "prompt", "scope")
        )
    if (fits / "selection.json").exists():
        rows = []
        for task, t in json.loads((fits / "selection.json").read_text())["tasks"].items():
            for budget, b in t["by_budget"].items():
                rows.append(
                    {
                        "task": task,
                        "budget": int(budget),
                        **{
                            k: b[k]
                            for k in ("select_mae", "random_mae", "random_mae_std", "anchor_points_mae", "select_beats_random")
                        },
                    }
                )
        out["selection"] = pl.DataFrame(rows).sort("task", "budget")
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", nargs="?", default="results")
    parser.add_argument("--config", default="config/config.yaml")
    parser.add_argument("--tasks-dir", default="resources/tasks")
    parser.add_argument("--learned", type=float, default=0.1, help="a run learned a task's domain above chance + this")
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args(argv)
    cfg = yaml.safe_load(open(args.config))
    tables = Path(args.results) / "tables"
    pl.Config.set_tbl_rows(100)
    pl.Config.set_tbl_cols(20)
    pl.Config.set_tbl_width_chars(200)
    read = {
        name: pl.read_parquet(tables / f"{name}.parquet") for name in ("runs", "task_scores", "sft_scores", "sft_example_scores")
    }
    both = paired(read["task_scores"], read["sft_scores"], cfg, Path(args.tasks_dir), args.learned)
    out = {
        "sft_gain": sft_gains(both),
        "per_run": per_run(both),
        "separated_pairs": separated_pairs(read["sft_example_scores"], cfg),
        "largest_zero_shot": largest_zero_shot(read["runs"], read["task_scores"]),
        **studies(Path(args.results) / "fits"),
    }
    for name, frame in out.items():
        print(name)
        print(frame)
    if args.json:
        Path(args.json).write_text(json.dumps({k: v.to_dicts() for k, v in out.items()}, indent=1))


if __name__ == "__main__":
    main()
