"""fit_decision (DataDecide's decision accuracy) on imported results: a few runs of the shipped
mlfoundations/scaling copy (resources/public/mlfoundations-scaling/, MIT, Gadre et al. 2024), decided by hand."""

import copy
import csv
import itertools
import os
from pathlib import Path

import polars as pl
import pytest
import yaml

from lmforecast.config import ConfigError, validate
from lmforecast.fits.decision import DecisionSettings
from lmforecast.fits.decision.recipes import EXTRAPOLATED, decisions
from lmforecast.fits.registry import registry
from lmforecast.measure.imports import import_tables

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
EXAMPLE = yaml.safe_load((ROOT / "config" / "examples" / "mlfoundations-scaling.yaml").read_text())
DATASETS, SIZES, TARGET = ("c4", "rpj", "rw"), ("11M", "79M", "154M"), "412M"
RUNS = [f"{d}-{s}-x1" for d in DATASETS for s in (*SIZES, TARGET)]
SPEC = {
    "scale": ["n_params", "tokens_planned"],
    "recipe": ["mixture"],
    "targets": [f"c4-{TARGET}-x1"],
    "metric": "acc",
    "shots": 0,
}


def small_import():
    imp = copy.deepcopy(EXAMPLE["import"])
    imp["runs"] = [r for r in imp["runs"] if r["name"] in RUNS]
    imp["ladder"]["files"] = [f for f in imp["ladder"]["files"] if f["run"] in RUNS]
    return imp


@pytest.fixture(scope="module")
def tables():
    cwd = Path.cwd()
    try:
        os.chdir(ROOT)  # the example's paths are relative to the repository root
        return {k: pl.from_arrow(v) for k, v in import_tables(small_import()).items()}
    finally:
        os.chdir(cwd)


def final_row(run):
    with open(ROOT / f"resources/public/mlfoundations-scaling/runs/{run}.csv") as f:
        return list(csv.DictReader(f))[-1]


def by_hand(proxy: dict, target: dict) -> float:
    """Share of pairs of datasets ordered alike (no ties in these values)."""
    pairs = list(itertools.combinations(sorted(target), 2))
    return sum((proxy[a] > proxy[b]) == (target[a] > target[b]) for a, b in pairs) / len(pairs)


def test_decision_accuracy_on_imported_runs_against_the_csvs(tables):
    predictions = pl.DataFrame(  # as fit_scaling's back-test writes them: c4 predicted best, rw worst
        {
            "predictor": ["direct"] * 3,
            "task": ["arc_easy"] * 3,
            "run": [f"{d}-{TARGET}-x1" for d in DATASETS],
            "score_pred": [0.50, 0.45, 0.40],
            "loss_pred": [3.0, float("nan"), 3.2],
        }
    )
    d = decisions(tables, DecisionSettings.from_dict(SPEC), predictions)
    assert set(d["target_scale"]) == {f"n_params=411616256,tokens_planned={8232325120}"}
    assert d["task"].n_unique() == 47  # 46 tasks and avg46 (an imported task group)
    target = {d_: float(final_row(f"{d_}-{TARGET}-x1")["arc_easy/acc"]) for d_ in DATASETS}
    arc = d.filter(pl.col("task") == "arc_easy")
    runs = {r["run"]: r for r in tables["runs"].iter_rows(named=True)}
    for size in SIZES:
        run = runs[f"c4-{size}-x1"]
        finals = {d_: final_row(f"{d_}-{size}-x1") for d_ in DATASETS}
        at = arc.filter(pl.col("scale") == f"n_params={run['n_params']},tokens_planned={run['tokens_planned']}")
        assert at["n_recipes"].unique().to_list() == [3] and at["n_pairs"].unique().to_list() == [3]
        assert at["best"].unique().to_list() == [max(target, key=target.get)]
        acc = {r["proxy"]: r["accuracy"] for r in at.iter_rows(named=True)}
        assert acc["acc@0shot"] == by_hand({k: float(v["arc_easy/acc"]) for k, v in finals.items()}, target)
        assert acc["-loss[c4_val]"] == by_hand({k: -float(v["loss/c4_val"]) for k, v in finals.items()}, target)
    extrapolated = {r["proxy"]: r for r in arc.filter(pl.col("scale") == EXTRAPOLATED).iter_rows(named=True)}
    assert extrapolated["direct"]["accuracy"] == by_hand({"c4": 0.50, "rpj": 0.45, "rw": 0.40}, target)
    assert extrapolated["direct"]["proxy_best"] == "c4"
    assert extrapolated["-loss_pred[direct]"]["n_recipes"] == 2  # rpj's NaN loss is left out, not ranked


def test_decision_errors_name_the_setting(tables):
    with pytest.raises(ConfigError, match=r"fit\.decision\.metric/shots: no task_scores rows of 'acc_norm' at 0 shots; "):
        decisions(tables, DecisionSettings.from_dict({**SPEC, "metric": "acc_norm"}))
    with pytest.raises(ConfigError, match=r"fit\.decision\.scale: \['size'\] are not all set for runs \['c4-11M-x1'"):
        decisions(tables, DecisionSettings.from_dict({**SPEC, "scale": ["size"]}))
    with pytest.raises(ConfigError, match=r"fit\.decision\.recipe: \['colour'\] are not columns of the runs table"):
        decisions(tables, DecisionSettings.from_dict({**SPEC, "recipe": ["colour"]}))


def test_the_config_check_runs_at_parse(monkeypatch):
    monkeypatch.chdir(ROOT)
    config = copy.deepcopy(DEFAULT) | {"runs": [], "import": small_import()}
    config["fit"] = {"scaling": {**EXAMPLE["fit"]["scaling"], "holdout": [f"c4-{TARGET}-x1"]}, "decision": dict(SPEC)}
    validate(config)
    assert [f.name for f in registry().configured(config, imported=True)] == ["scaling", "decision"]
    assert registry()["decision"].reads(config) == ()
    config["fit"]["decision"] |= {"targets": ["c4-1B-x1"], "predictors": True, "shots": 5}
    with pytest.raises(ConfigError) as err:
        validate(config)
    for message in (
        r"fit.decision.targets: ['c4-1B-x1'] are not runs of this config",
        r"fit.decision.predictors: fit.scaling.shots is 0, fit.decision.shots 5",
        r"fit.decision.predictors: targets ['c4-1B-x1'] are not in fit.scaling.holdout",
    ):
        assert message in str(err.value)
    assert registry()["decision"].reads(config) == ("scaling_predictions.parquet",)  # the rule waits for fit_scaling


def test_the_imported_files_are_read_once_per_config_check_and_the_fits_check_those_tables(monkeypatch):
    """The import check reads the files; fit.relatedness and fit.decision check the tables it read."""
    from lmforecast.measure import imports

    monkeypatch.chdir(ROOT)
    reads = []
    real = imports.import_tables
    monkeypatch.setattr(imports, "import_tables", lambda spec: reads.append(spec) or real(spec))
    config = copy.deepcopy(DEFAULT) | {"runs": [], "import": small_import()}
    config["fit"] = {
        "scaling": EXAMPLE["fit"]["scaling"],
        "relatedness": {**DEFAULT["fit"]["relatedness"], "metric": "logprob_correct"},
        "decision": {**SPEC, "scale": ["size"]},
    }
    with pytest.raises(ConfigError) as err:
        validate(config)
    assert len(reads) == 1
    assert "fit.relatedness.metric: 'logprob_correct' is not among the imported metrics ['acc']" in str(err.value)
    assert "fit.decision.scale: ['size'] are not all set for runs" in str(err.value)  # size: trained runs only
