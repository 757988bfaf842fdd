"""The report: rendered from the smoke workflow's outputs (the session's one smoke run), every section
present, every figure non-empty with its data beside it; the leaderboard; `snakemake --report`."""

import base64
import io
import re
import shutil

import matplotlib.image
import polars as pl
import pytest
import yaml
from smoke import snakemake

from lmforecast import tables
from lmforecast.fits.registry import registry
from lmforecast.measure.aggregate import checkpoints_table, runs_table, training_loss_table
from lmforecast.report import TABLES
from lmforecast.report.leaderboard import leaderboard
from lmforecast.report.page import build_report, sections
from lmforecast.settings import Run


def _tables(results):
    return {name: pl.read_parquet(results / "tables" / f"{name}.parquet") for name in TABLES}


# the fits that need SFT labels or per-example scores (left out in analysis-only mode)
TRAINED = tuple(fit.name for fit in registry() if fit.needs_training)


def _spec(workdir, fits=tuple(fit.name for fit in registry()), imported=False):
    return {"fits": list(fits), "imported": imported}


def _render(finished, tmp_path, **kw):
    """The report rendered again into a copy of results/report (the fits' figures are there: their rules drew them)."""
    out = tmp_path / "report"
    shutil.copytree(finished / "results/report", out)
    for made_by_report in ("index.html", "leaderboard.parquet", "training_curves.png", "domain_losses.png"):
        (out / made_by_report).unlink()
    results = finished / "results"
    build_report(_tables(results), results / "fits", _spec(finished, **kw), out)
    return out


@pytest.mark.workflow
def test_report_has_every_section_and_every_image_is_a_nonempty_figure(finished, tmp_path):
    out = _render(finished, tmp_path)
    html = (out / "index.html").read_text()
    for key, title in sections().items():
        assert f'<section id="{key}"><h2>{title}</h2>' in html, key
    assert "Not in this report" not in html  # the smoke config runs every fit
    # the scaling section opens with each predictor's errors, coverage and the targets' sampling floor, then each
    # against the most accurate
    scaling = re.search(r'<section id="scaling">(.*?)</section>', html, re.S).group(1)
    assert (
        scaling.index("floor_rel_error") < scaling.index("diff_lo") < scaling.index("Per held-out run") < scaling.index("<figure")
    )
    images = re.findall(r'<figure id="fig-([\w]+)"><img alt="\1" src="data:image/png;base64,([^"]+)">', html)
    stems = {stem for stem, _ in images}
    config = yaml.safe_load((finished / "config.yaml").read_text())
    expected = {
        "training_curves",
        "domain_losses",
        "loss_vs_compute",
        "score_vs_loss",
        "predicted_vs_actual",
        "pairwise_accuracy",
        "pairwise_gap",
        "task_relatedness",
        "point_relatedness",
        "selection",
        *(f"transfer_{t}" for t in config["sft"]["tasks"]),
    }
    assert stems == expected and len(images) == len(expected)
    assert html.count("<img") == len(expected)  # nothing else embedded, nothing missing
    for stem, data in images:
        pixels = matplotlib.image.imread(io.BytesIO(base64.b64decode(data)), format="png")
        assert pixels.shape[0] > 100 and pixels.shape[1] > 300, stem
        assert pixels[..., :3].std() > 0.02, f"{stem}: a blank image"
        beside = pl.read_parquet(out / f"{stem}.parquet")  # its data, same stem
        assert beside.height > 0, stem
        assert re.search(rf'id="fig-{stem}">.*?<figcaption><b>{stem}</b>.{{80,}}?</figcaption>', html), f"{stem}: caption"
    # the workflow's own page is the same page: rendering is deterministic
    assert html == (finished / "results/report/index.html").read_text()


@pytest.mark.workflow
def test_leaderboard_covers_every_predictor_and_marks_the_best_per_target(finished, tmp_path):
    out = _render(finished, tmp_path)
    board = pl.read_parquet(out / "leaderboard.parquet")
    fits = finished / "results/fits"
    preds = pl.read_parquet(fits / "scaling_predictions.parquet")
    pairwise = pl.read_parquet(fits / "pairwise.parquet")
    selection = pl.read_parquet(fits / "selection.parquet")
    assert board.height == preds.height + pairwise.height + selection.height
    assert set(board.filter(pl.col("question") == "scaling")["predictor"]) == set(preds["predictor"])
    assert "learned comparator" in set(board["predictor"])
    assert {"select", "anchor_points", "random"} <= set(board["predictor"])
    for (question, target), g in board.group_by("question", "target"):
        finite = g.filter(pl.col("value").is_finite())
        if finite.height == 0:
            continue
        best = finite["value"].min() if g["better"][0] == "lower" else finite["value"].max()
        assert ((g.filter("best")["value"] - best).abs() < 1e-12).all(), target  # ties within rounding all marked
        assert g.filter("best").height >= 1 and ((g.filter(~pl.col("best"))["value"] - best).abs() >= 1e-12).all(), target
    html = (out / "index.html").read_text()
    assert 'id="leaderboard" class="sortable"' in html and html.count("<tr class=best>") == board["best"].sum()


@pytest.mark.workflow
def test_sections_whose_fit_does_not_run_are_left_out_with_a_note(finished, tmp_path):
    out = _render(finished, tmp_path, fits=["scaling"])
    html = (out / "index.html").read_text()
    for key in TRAINED:
        section = re.search(rf'<section id="{key}">(.*?)</section>', html).group(1)
        assert "Not in this report: fit" in section and "<img" not in section, key
    board = pl.read_parquet(out / "leaderboard.parquet")
    assert set(board["question"]) == {"scaling"}
    imported = (_render(finished, tmp_path / "imported", fits=["scaling"], imported=True) / "index.html").read_text()
    assert imported.count("analysis-only (import) mode") == len(TRAINED)


@pytest.mark.workflow
def test_snakemake_report_collects_the_flagged_figures(finished):
    snakemake(finished, "--report", "results/report.html")
    page = (finished / "results/report.html").read_text()
    assert "Domain losses vs compute" in page or "domain_losses.png" in page
    for stem in ("predicted_vs_actual", "pairwise_accuracy", "selection", "index"):
        assert f"{stem}" in page, stem
    (finished / "results/report.html").unlink()  # not an output of the workflow


def test_leaderboard_marks_ties_and_knows_which_way_is_better(tmp_path):
    preds = pl.DataFrame(
        {
            "predictor": ["a", "b", "c"],
            "family": ["f"] * 3,
            "task": ["t"] * 3,
            "run": ["r"] * 3,
            "score_actual": [0.5] * 3,
            "score_pred": [0.6, 0.4, 0.8],
            "score_lo": [0.55, 0.3, 0.7],
            "score_hi": [0.7, 0.45, 0.9],
            "abs_error": [0.1, 0.1, 0.3],
            "covered": [False, False, False],
            "n_fit_runs": [4] * 3,
            "n_boot": [10] * 3,
        }
    )
    pairwise = pl.DataFrame(
        {
            "task_group": ["g", "g"],
            "proxy": ["inv_ppl", "learned"],
            "accuracy": [0.3, 0.7],
            "ci_low": [0.1, 0.5],
            "ci_high": [0.5, 0.9],
            "n_pairs": [10, 10],
        }
    )
    from lmforecast.fits.pairwise import leaderboard_rows as pairwise_rows
    from lmforecast.fits.scaling import leaderboard_rows as scaling_rows

    fits = tmp_path / "fits"
    fits.mkdir()
    preds.write_parquet(fits / "scaling_predictions.parquet")
    pairwise.write_parquet(fits / "pairwise.parquet")
    board = leaderboard(scaling_rows(fits) + pairwise_rows(fits))
    assert board.filter("best")["predictor"].sort().to_list() == ["a", "b", "learned comparator"]
    a = board.filter(pl.col("predictor") == "a").row(0, named=True)
    assert (a["lo"], a["hi"]) == pytest.approx((0.05, 0.2))  # |0.5 - p| for p in [0.55, 0.7]


def test_training_curves_draw_every_step_of_a_trained_run(tiny_run, tiny_checkpoints, tmp_path):
    """The page's training curves from rule aggregate's tables of a tiny run (no evaluation, no fit): the
    training loss of each of its 12 steps at its tokens seen, beside the 3 checkpoints' rows."""
    built = {
        "runs": runs_table([Run.from_dict(tiny_run)], tiny_checkpoints),
        "checkpoints": checkpoints_table(tiny_checkpoints),
        "training_loss": training_loss_table(tiny_checkpoints),
    }
    built = {name: pl.from_arrow(t) for name, t in built.items()}
    for name in ("domain_losses", "task_scores", "sft_scores"):
        built[name] = pl.from_arrow(tables.SCHEMAS[name].empty_table())
    out = tmp_path / "report"
    out.mkdir()
    build_report(built, tmp_path / "fits", {"fits": []}, out)
    html = (out / "index.html").read_text()
    assert '<figure id="fig-training_curves"><img' in html
    pixels = matplotlib.image.imread(out / "training_curves.png")
    assert pixels.shape[1] > 300 and pixels[..., :3].std() > 0.02
    data = pl.read_parquet(out / "training_curves.parquet")
    assert data["step"].to_list() == list(range(1, 13))  # the checkpoints (3, 8, 12) are among the steps
    assert data["step_loss"].to_list() == built["training_loss"]["loss"].to_list()
    assert data["tokens"].to_list() == [k * 2 * 16 for k in range(1, 13)]  # batch 2 x 16 tokens a step
    assert data["step_loss_avg"][-1] == pytest.approx(data["step_loss"].mean())  # a 20-step window: all 12 here
    assert data.filter(pl.col("train_loss").is_not_null())["step"].to_list() == [3, 8, 12]


def test_training_curves_of_an_imported_run_without_learning_rate_keep_their_legend(tmp_path):
    """Imported runs (the Pythia example) have no learning rate: the last panel is empty, and the runs' legend
    comes from a panel that has lines, without matplotlib's warning on an empty legend."""
    import warnings

    from lmforecast.report import plots

    checkpoints = pl.DataFrame(
        {
            "run": ["a", "a", "b"],
            "step": [1, 2, 1],
            "tokens": [10, 20, 10],
            "flops": [1e3, 2e3, 3e3],
            "train_loss": [None, None, None],
            "lr": [None, None, None],
        },
        schema_overrides={"train_loss": pl.Float64, "lr": pl.Float64},
    )
    points = pl.DataFrame({"run": ["a", "a", "b"], "step": [1, 2, 1], "loss": [3.0, 2.5, 2.8], "family": ["f"] * 3})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plots.plot_training_curves(checkpoints, points, tmp_path / "curves.png")
    assert (tmp_path / "curves.png").stat().st_size > 0


def test_training_curves_of_many_runs_fit_their_legend(tmp_path):
    """The mlfoundations example's 104 imported runs: the legend goes in columns that fit the figure, so
    tight_layout applies (one column ran off the figure: matplotlib warned 'Tight layout not applied')."""
    import warnings

    from lmforecast.report import plots

    runs = [
        f"{d}-{s}M-x{m}" for d in ("c4", "rpj", "rw") for s in (11, 79, 154, 412) for m in (0.25, 1, 4, 8, 16, 32, 64, 128, 256)
    ]
    checkpoints = pl.DataFrame(
        {"run": runs, "step": 1, "tokens": 10, "flops": 1e3, "train_loss": None, "lr": None},
        schema_overrides={"train_loss": pl.Float64, "lr": pl.Float64},
    )
    points = pl.DataFrame({"run": runs, "step": 1, "loss": 3.0, "family": "f"})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plots.plot_training_curves(checkpoints, points, tmp_path / "curves.png")
    assert len(runs) > 100 and (tmp_path / "curves.png").stat().st_size > 0
