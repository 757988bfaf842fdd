import numpy as np
import polars as pl
import pytest

from lmforecast import tables
from lmforecast.data import planted
from lmforecast.fits.relatedness.trajectories import correlation_matrix
from lmforecast.fits.selection import SelectionSettings
from lmforecast.fits.selection.points import (
    anchor_points,
    evaluate_selection,
    kendall_tau,
    random_points,
    score_selection,
    select_points,
    split_runs,
    task_benchmark,
    weighted_mean,
)

CFG = {
    "metric": "acc",
    "shots": 0,
    "prompt": None,
    "budgets": [5, 10, 40, 60],
    "source_runs": None,
    "source_fraction": 0.5,
    "degree": 3,
    "random_draws": 20,
    "small_budget_max": 10,
    "seed": 0,
}
RUNS = [f"run{i}" for i in range(6)]


@pytest.fixture(scope="module")
def scores():
    return planted.example_scores(n_examples=40, runs=6, checkpoints=4, groups=4, tasks=("t1", "t2"))


@pytest.mark.parametrize("seed", range(20))
def test_split_never_shares_a_run(seed):
    source, target = split_runs(RUNS, SelectionSettings.from_dict({**CFG, "seed": seed}))
    assert set(source).isdisjoint(target) and sorted(source + target) == RUNS
    assert len(source) == 3


def test_split_is_seeded_and_takes_an_explicit_list():
    assert split_runs(RUNS, SelectionSettings.from_dict(CFG)) == split_runs(
        list(reversed(RUNS)), SelectionSettings.from_dict(CFG)
    )
    source, target = split_runs(RUNS, SelectionSettings.from_dict({**CFG, "source_runs": ["run4", "run0"]}))
    assert source == ["run0", "run4"] and target == ["run1", "run2", "run3", "run5"]
    with pytest.raises(ValueError, match=r"fit.selection.source_runs: \['run9'\] are not runs of the tables"):
        split_runs(RUNS, SelectionSettings.from_dict({**CFG, "source_runs": ["run9"]}))
    with pytest.raises(ValueError, match="need at least one source and one target run"):
        split_runs(RUNS, SelectionSettings.from_dict({**CFG, "source_runs": RUNS}))


def test_benchmark_matrices_keep_source_and_target_models_apart(scores):
    source, target = split_runs(RUNS, SelectionSettings.from_dict(CFG))
    bench = task_benchmark(scores.filter(pl.col("task") == "t1"), "acc", source, target)
    assert set(bench["segments"]) == set(source)
    assert bench["nll"].shape == (40, 12) and bench["correct"].shape == (40, 12)
    with pytest.raises(AssertionError, match="both sides"):
        task_benchmark(scores.filter(pl.col("task") == "t1"), "acc", source, [*target, source[0]])


def test_every_estimator_is_exact_when_the_budget_is_the_whole_benchmark(scores):
    source, target = split_runs(RUNS, SelectionSettings.from_dict(CFG))
    bench = task_benchmark(scores.filter(pl.col("task") == "t1"), "acc", source, target)
    n = len(bench["examples"])
    truth = bench["correct"].mean(axis=0)
    dist = 1.0 - correlation_matrix(bench["confidence"])
    all_points_tau = kendall_tau(bench["logprob"].mean(axis=0), truth)
    for idx, w in (
        select_points(bench["nll"], bench["segments"], 3, n, 0),
        anchor_points(dist, n, 0),
        random_points(n, n, np.random.default_rng(0)),
    ):
        assert sorted(idx) == list(range(n))  # every point, once
        assert np.allclose(weighted_mean(bench["correct"], idx, w), truth, atol=1e-12)
        mae, tau = score_selection(bench["correct"], bench["logprob"], idx, w)
        assert mae < 1e-12
        assert tau == pytest.approx(all_points_tau)


def test_cluster_weights_sum_to_the_benchmark(scores):
    source, target = split_runs(RUNS, SelectionSettings.from_dict(CFG))
    bench = task_benchmark(scores.filter(pl.col("task") == "t2"), "acc", source, target)
    idx, w = select_points(bench["nll"], bench["segments"], 3, 7, 0)
    assert len(idx) == 7 and len(set(idx)) == 7 and w.sum() == 40


def test_evaluation_rows_budgets_and_summary(scores):
    rows, summary = evaluate_selection(scores, SelectionSettings.from_dict(CFG))
    assert rows.height == 2 * 2 * 3  # tasks x budgets below 40 examples x methods
    assert set(rows["budget"]) == {5, 10}  # 40 and 60 >= 40 examples: skipped
    assert summary["tasks"]["t1"]["skipped_budgets"] == [40, 60]
    assert summary["tasks"]["t1"]["small_budgets"] == [5, 10]
    assert set(summary["source_runs"]).isdisjoint(summary["target_runs"])
    random = rows.filter(pl.col("method") == "random")
    assert (random["mae_std"] > 0).all() and (random["draws"] == 20).all()
    assert rows.filter(pl.col("method") != "random")["mae_std"].is_nan().all()
    assert rows["mae"].is_between(0, 1).all()
    verdict = summary["tasks"]["t2"]["by_budget"]["5"]
    assert verdict["select_beats_random"] == (verdict["select_mae"] < verdict["random_mae"])
    again, _ = evaluate_selection(scores, SelectionSettings.from_dict(CFG))
    assert again.equals(rows)  # deterministic


def test_cli_runs_on_small_parquet_tables(tmp_path, scores):
    """`lmforecast fit` selection, relatedness and transfer on synthetic tables of the aggregate schemas."""
    import json

    from lmforecast import tables
    from lmforecast.cli import main

    tdir = tmp_path / "tables"
    tables.write(tables.to_table("example_scores", scores.to_dict(as_series=False)), tdir / "example_scores.parquet")
    mean = scores.group_by("run", "step", "task", "prompt", "shots", maintain_order=True).agg(
        pl.col("correct").cast(pl.Float64).mean().alias("acc"), pl.col("logprob_correct").mean()
    )
    ts = mean.unpivot(index=["run", "step", "task", "prompt", "shots"], variable_name="metric").with_columns(
        pl.lit(40).alias("n"), pl.lit(0.25).alias("chance")
    )
    tables.write(tables.to_table("task_scores", ts.to_dict(as_series=False)), tdir / "task_scores.parquet")
    last = mean.filter(pl.col("step") == 40)
    sft = last.select(
        "run",
        "step",
        "task",
        pl.lit("full").alias("sft_method"),
        pl.lit("single").alias("sft_data"),
        pl.lit("acc").alias("metric"),
        (0.2 + pl.col("acc")).alias("value"),
        pl.lit(40).alias("n"),
    )
    tables.write(tables.to_table("sft_scores", sft.to_dict(as_series=False)), tdir / "sft_scores.parquet")
    fits, plots = tmp_path / "fits", tmp_path / "report"

    def fit(name, spec):
        main(["fit", name, "--spec", json.dumps(spec), "--tables", str(tdir), "--fits", str(fits), "--report-dir", str(plots)])

    fit("selection", CFG)
    rows = pl.read_parquet(fits / "selection.parquet")
    assert set(rows["method"]) == {"select", "anchor_points", "random"} and rows.height == 12
    summary = json.loads((fits / "selection.json").read_text())
    assert set(summary["tasks"]) == {"t1", "t2"}
    assert isinstance(summary["tasks"]["t1"]["select_beats_random_at_small_budgets"], bool)

    rel = {"shots": 0, "prompt": None, "clusters": 3, "degree": 3, "seed": 0}
    fit("relatedness", rel)
    assert pl.read_parquet(fits / "task_relatedness.parquet").height == 4
    assert len(json.loads((fits / "point_relatedness.json").read_text())["point_relatedness"]) == 2

    fit("transfer", {"metric": "acc", "shots": 0})
    corr = pl.read_parquet(fits / "transfer.parquet")
    assert corr.height == 2 and (corr["pearson_r"] > 0.99).all()  # SFT accuracy = zero-shot + 0.2
    for name in ("selection", "task_relatedness", "point_relatedness", "transfer_t1", "transfer_t2"):
        assert (plots / f"{name}.png").stat().st_size > 5000, name
        assert (plots / f"{name}.rst").read_text().strip(), name  # its caption, beside it


def test_cli_names_a_table_of_the_wrong_schema(tmp_path):
    import json

    from lmforecast.cli import main

    (tmp_path / "tables").mkdir()
    wrong = tmp_path / "tables" / "example_scores.parquet"
    pl.DataFrame({"run": ["a"], "step": [1]}).write_parquet(wrong)
    tables.checksum_path(wrong).write_text(tables.sha256(wrong))  # intact (checksummed): its schema is what is wrong
    with pytest.raises(ValueError, match=r"example_scores.parquet: columns \[.*'task'.*\] missing"):
        main(
            [
                "fit",
                "selection",
                "--spec",
                json.dumps(CFG),
                "--tables",
                str(tmp_path / "tables"),
                "--fits",
                str(tmp_path),
                "--report-dir",
                str(tmp_path),
            ]
        )


def test_selection_plot_survives_an_undefined_ranking(tmp_path, scores):
    """All target models tie on a task (tau NaN): the plot says so instead of failing."""
    from lmforecast.report.plots import plot_selection

    rows, _ = evaluate_selection(scores, SelectionSettings.from_dict(CFG))
    rows = rows.with_columns(
        pl.when(pl.col("task") == "t2").then(float("nan")).otherwise(pl.col("kendall_tau")).alias("kendall_tau"),
        pl.when(pl.col("task") == "t2").then(float("nan")).otherwise(pl.col("kendall_tau_std")).alias("kendall_tau_std"),
    )
    plot_selection(rows, tmp_path / "selection.png")
    assert (tmp_path / "selection.png").stat().st_size > 5000
