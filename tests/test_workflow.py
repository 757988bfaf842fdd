"""The whole chain on the smoke config, through Snakemake itself (about two minutes on 2 cores)."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest
import yaml

from lmforecast import tables

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "tests" / "data" / "smoke.yaml"
pytestmark = pytest.mark.workflow


BIN = str(Path(sys.executable).parent)  # snakemake and lmforecast of this environment


def snakemake(workdir, *args, check=True):
    cmd = [f"{BIN}/snakemake", "--cores", "2", "--configfile", str(workdir / "config.yaml"), *args]
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"}
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
    return proc


def planned_jobs(workdir):
    """(rule, wildcards) of every job a dry run plans."""
    out = snakemake(workdir, "--dry-run").stdout
    jobs = []
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", out):
        m = re.match(r"(?:local)?rule (\w+):", block)
        if m:
            w = re.search(r"wildcards: (.*)", block)
            jobs.append((m.group(1), dict(kv.split("=", 1) for kv in w.group(1).split(", ")) if w else {}))
    return jobs


def copy_workflow(dest):
    for name in ("workflow", "resources", "config"):
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, dest / name)
    shutil.copy(SMOKE, dest / "config.yaml")
    return dest


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    workdir = copy_workflow(tmp_path_factory.mktemp("smoke"))
    snakemake(workdir)
    return workdir


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
    params = pl.read_parquet(finished / "results/fits/flp_params.parquet")
    stage1 = params.filter(pl.col("stage") == "loss")
    assert set(stage1["param"]) == {"A", "alpha", "E", "C0"}
    assert stage1.filter(pl.col("param") != "C0")["stderr"].is_not_nan().all()
    assert "stage 1" in (finished / "results/fits/flp_report.txt").read_text()
    html = (finished / "results/report/index.html").read_text()
    assert html.count("data:image/png;base64,") == 2
    assert (finished / "results/report/loss_vs_compute.png").stat().st_size > 10_000


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
    assert {rule for rule, w in jobs if "run" not in w} == {"aggregate", "fit_flp", "report", "all"}
    assert len([r for r, _ in per_run if r == "pretrain"]) == config["training"]["checkpoints"]


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
    for name in ("flp_params", "flp_predictions"):
        a = pl.read_parquet(finished / "results/fits" / f"{name}.parquet")
        b = pl.read_parquet(again / "results/fits" / f"{name}.parquet")
        assert a.equals(b), name
