"""The whole chain on the smoke config, through Snakemake itself (about two minutes on 2 cores)."""

import json
import re
import shutil

import polars as pl
import pyarrow.parquet as pq
import pytest
import yaml
from smoke import SMOKE, copy_workflow, snakemake

from lmforecast import tables
from lmforecast.config import checkpoint_steps
from lmforecast.settings import Training

pytestmark = pytest.mark.workflow


def planned_jobs(workdir, *args):
    """(rule, wildcards) of every job a dry run (with more `args`: targets, options) plans."""
    out = snakemake(workdir, "--dry-run", *args).stdout
    jobs = []
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", out):
        m = re.match(r"(?:local)?rule (\w+):", block)
        if m:
            w = re.search(r"wildcards: (.*)", block)
            jobs.append((m.group(1), dict(kv.split("=", 1) for kv in w.group(1).split(", ")) if w else {}))
    return jobs


def test_tables_have_the_design_columns_and_types(finished):
    for name, schema in tables.SCHEMAS.items():
        table = pq.read_table(finished / "results" / "tables" / f"{name}.parquet")
        assert table.schema.equals(schema), name
        assert table.num_rows > 0, name
    config = yaml.safe_load((finished / "config.yaml").read_text())
    ck = pl.read_parquet(finished / "results/tables/checkpoints.parquet")
    assert ck.group_by("run").len()["len"].to_list() == [config["training"]["checkpoints"]] * len(config["runs"])
    ts = pl.read_parquet(finished / "results/tables/task_scores.parquet")
    # every task at every checkpoint, every prompt and shot setting
    assert ts.select("run", "step", "task", "prompt", "shots").unique().height == ck.height * 4 * 2 * 2
    sft = pl.read_parquet(finished / "results/tables/sft_scores.parquet")
    # every run x task x method, single-task and multi-task
    expected = len(config["runs"]) * len(config["sft"]["tasks"]) * len(config["sft"]["methods"]) * 2
    assert sft.select("run", "task", "sft_method", "sft_data").unique().height == expected
    # per-example rows after SFT average to the accuracy in sft_scores
    per_example = pl.read_parquet(finished / "results/tables/sft_example_scores.parquet")
    keys = ["run", "step", "task", "sft_method", "sft_data"]
    mean = per_example.group_by(keys).agg(pl.col("correct").mean().alias("mean"))
    joined = sft.filter(pl.col("metric") == "acc").join(mean, on=keys)
    assert joined.height == expected and (joined["value"] - joined["mean"]).abs().max() < 1e-12


def test_tokens_by_domain_and_span_corruption_loss(finished):
    ck = pl.read_parquet(finished / "results/tables/checkpoints.parquet")
    by_domain = ck["tokens_by_domain"].str.json_decode()
    assert [sum(d.values()) for d in by_domain.to_list()] == ck["tokens"].to_list()
    dl = pl.read_parquet(finished / "results/tables/domain_losses.parquet")
    assert dl["span_corruption_loss"].is_finite().all() and (dl["span_corruption_loss"] > 0).all()
    runs = pl.read_parquet(finished / "results/tables/runs.parquet")
    assert set(runs["objective"]) == {"clm", "ul2"}  # the smoke config's objectives


def test_loss_falls_within_each_run(finished):
    dl = pl.read_parquet(finished / "results/tables/domain_losses.parquet")
    mean = dl.group_by("run", "step").agg(pl.col("loss").mean()).sort("run", "step")
    for run, group in mean.group_by("run"):
        losses = group["loss"].to_list()
        assert losses[-1] < losses[0], run


def test_fit_writes_parameters_with_standard_errors_and_the_report(finished):
    params = pl.read_parquet(finished / "results/fits/scaling_params.parquet")
    stage1 = params.filter((pl.col("predictor") == "flp") & (pl.col("stage") == "loss"))
    assert set(stage1["param"]) == {"A", "alpha", "E", "C0"}
    assert stage1.filter(pl.col("param") != "C0")["stderr_boot"].is_not_nan().all()
    preds = pl.read_parquet(finished / "results/fits/scaling_predictions.parquet")
    assert {"direct", "flp"} <= set(preds["predictor"])
    assert "fitted on" in (finished / "results/fits/scaling_report.txt").read_text()
    assert "Leaderboard" in (finished / "results/report/index.html").read_text()  # the page itself: test_report.py
    assert (finished / "results/report/loss_vs_compute.png").stat().st_size > 10_000


def test_pairwise_selection_scores_every_proxy_and_the_learned_comparator(finished):
    results = pl.read_parquet(finished / "results/fits/pairwise.parquet")
    config = yaml.safe_load((finished / "config.yaml").read_text())
    n = len(config["runs"])
    assert set(results["task_group"]) == {g["name"] for g in config["fit"]["pairwise"]["task_groups"]}
    assert {"inv_ppl", "learned", "-loss[facts]", "acc@0shot"} <= set(results["proxy"])
    assert (results["n_pairs"] + results["n_ties"] == n * (n - 1) // 2).all()
    assert results.filter(pl.col("proxy") != "learned")["accuracy"].is_between(0, 1).all()
    assert results.filter(pl.col("proxy") == "learned")["n_splits"][0] > 0  # the comparator was fitted
    summary = json.loads((finished / "results/fits/pairwise.json").read_text())
    assert summary["task_groups"]["all"]["n_models"] == n
    assert pl.read_parquet(finished / "results/fits/decision.parquet").height > 0
    decision = pl.read_parquet(finished / "results/fits/decision_accuracy.parquet")  # fit_decision: pre-SFT outcome
    assert set(decision["target_scale"]) == {"size=m"} and decision["accuracy"].is_not_null().all()


def test_seed002_fits_write_tables_summaries_and_plots(finished):
    import json

    config = yaml.safe_load((finished / "config.yaml").read_text())
    fits, report = finished / "results/fits", finished / "results/report"
    selection = pl.read_parquet(fits / "selection.parquet")
    summary = json.loads((fits / "selection.json").read_text())
    assert set(summary["source_runs"]).isdisjoint(summary["target_runs"])
    assert set(selection["task"]) == set(config["evaluation"]["tasks"]) == set(summary["tasks"])
    assert set(selection["method"]) == {"select", "anchor_points", "random"}
    assert set(selection["budget"]) == {
        b for b in config["fit"]["selection"]["budgets"] if b < config["evaluation"]["examples_per_task"]
    }
    assert all(100 in t["skipped_budgets"] for t in summary["tasks"].values())
    transfer = pl.read_parquet(fits / "transfer.parquet")
    assert set(transfer["task"]) == set(config["sft"]["tasks"]) and (transfer["n"] == len(config["runs"])).all()
    tasks = pl.read_parquet(fits / "task_relatedness.parquet")
    assert tasks.height == len(config["evaluation"]["tasks"]) ** 2
    points = json.loads((fits / "point_relatedness.json").read_text())["point_relatedness"]
    assert {p["task"] for p in points} == set(config["evaluation"]["tasks"])
    plots = ["selection", "task_relatedness", "point_relatedness", *(f"transfer_{t}" for t in config["sft"]["tasks"])]
    for name in plots:
        assert (report / f"{name}.png").stat().st_size > 5000, name


def test_nothing_to_do_after_a_run_then_an_lr_edit_reruns_only_that_run(finished):
    assert planned_jobs(finished) == []
    config = yaml.safe_load((finished / "config.yaml").read_text())
    original = finished / "config.yaml"
    backup = finished / "config.orig.yaml"
    shutil.copy(original, backup)
    config["runs"][1]["lr"] = 0.004
    original.write_text(yaml.safe_dump(config))
    try:
        jobs = planned_jobs(finished)
    finally:
        shutil.copy(backup, original)
    target = config["runs"][1]["name"]
    per_run = [(rule, w) for rule, w in jobs if "run" in w]
    assert {rule for rule, _ in per_run} == {"pretrain", "evaluate", "sft"}
    assert {w["run"] for _, w in per_run} == {target}
    assert {rule for rule, w in jobs if "run" not in w} == {
        "aggregate",
        "fit_scaling",
        "fit_pairwise",
        "fit_decision",
        "report",
        "fit_transfer",
        "fit_relatedness",
        "fit_selection",
        "all",
    }
    assert len([r for r, _ in per_run if r == "pretrain"]) == config["training"]["checkpoints"]


@pytest.mark.parametrize("which, expected", [("last", [4]), (3, [1, 4]), (2, [2, 4]), ("all", [1, 2, 3, 4])])
def test_sft_checkpoint_selection(tmp_path, which, expected):
    """Which checkpoints are fine-tuned: last, every k-th counted back from the last, or all (a dry run)."""
    workdir = copy_workflow(tmp_path)
    config = yaml.safe_load(SMOKE.read_text())
    config["training"]["checkpoints"] = 4
    config["sft"]["checkpoints"] = which
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    run = config["runs"][0]
    sft = [w for rule, w in planned_jobs(workdir) if rule == "sft" and w["run"] == run["name"]]
    all_steps = checkpoint_steps(run["tokens"], Training.from_dict(config["training"]))
    assert sorted({int(w["step"]) for w in sft}) == [all_steps[k - 1] for k in expected]


def test_bad_config_stops_before_any_job(tmp_path):
    workdir = copy_workflow(tmp_path)
    config = yaml.safe_load(SMOKE.read_text())
    config["runs"][0]["lr"] = "high"
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    proc = snakemake(workdir, check=False)
    assert proc.returncode != 0
    assert "runs[0].lr: 'high' is not of type 'number'" in proc.stdout + proc.stderr
    assert not (workdir / "results").exists()


def test_same_config_twice_from_scratch_gives_equal_tables_and_fits(finished, tmp_path):
    again = copy_workflow(tmp_path)
    snakemake(again)
    for name in tables.SCHEMAS:
        a = pl.read_parquet(finished / "results/tables" / f"{name}.parquet")
        b = pl.read_parquet(again / "results/tables" / f"{name}.parquet")
        assert a.equals(b), name
    for name in (
        "scaling_params",
        "scaling_predictions",
        "pairwise",
        "pairwise_gap",
        "decision",
        "transfer",
        "task_relatedness",
        "point_relatedness",
        "selection",
    ):
        a = pl.read_parquet(finished / "results/fits" / f"{name}.parquet")
        b = pl.read_parquet(again / "results/fits" / f"{name}.parquet")
        assert a.equals(b), name


def test_checkpoints_per_segment_changes_the_jobs_not_the_tables(finished, tmp_path):
    """Two checkpoints per segment: one pretrain and one evaluate job per run (the earlier
    checkpoint inside the segment's directory), and the same tables as a job per checkpoint.
    On the smoke's two smallest runs: a run's rows do not depend on the other runs."""
    workdir = copy_workflow(tmp_path)
    config = yaml.safe_load(SMOKE.read_text())
    config["runs"] = config["runs"][:2]
    config["training"]["checkpoints_per_segment"] = 2
    config["sft"]["checkpoints"] = "all"  # the earlier checkpoint is fine-tuned from inside its segment
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    jobs = planned_jobs(workdir, "results/tables/runs.parquet")
    runs = {r["name"] for r in config["runs"]}
    for rule in ("pretrain", "evaluate"):
        assert sorted(w["run"] for r, w in jobs if r == rule) == sorted(runs), rule
    assert len([r for r, _ in jobs if r == "sft"]) == 2 * len(runs) * len(config["sft"]["methods"])
    snakemake(workdir, "results/tables/runs.parquet")
    run = config["runs"][0]
    first, last = checkpoint_steps(run["tokens"], Training.from_dict(config["training"]))
    assert (workdir / f"results/checkpoints/{run['name']}/step{last}/step{first}/model.safetensors").is_file()
    for name in tables.SCHEMAS:
        a = pl.read_parquet(finished / "results/tables" / f"{name}.parquet").filter(pl.col("run").is_in(sorted(runs)))
        b = pl.read_parquet(workdir / "results/tables" / f"{name}.parquet")
        if name.startswith("sft"):  # the default fine-tunes the last checkpoints only
            assert b.select("run", "step").unique().height == 2 * a.select("run", "step").unique().height, name
            b = b.join(a.select("run", "step").unique(), on=["run", "step"])
        assert a.sort(a.columns).equals(b.sort(b.columns)), name
