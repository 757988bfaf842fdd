"""The fit registry: a fit is one module that registers FIT, and the workflow, the CLI, the config
schema and the report all find it (tests/data/toy_fit.py, copied into a copy of the workflow)."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from smoke import BIN, planned_rules, snakemake

from lmforecast.fits.registry import Fit, registry
from lmforecast.fits.scaling import ScalingSettings

TOY = Path(__file__).parent / "data" / "toy_fit.py"


def test_every_fit_is_registered_once_with_a_summary_and_a_schema():
    names = [fit.name for fit in registry()]
    assert names == ["scaling", "decision", "pairwise", "transfer", "relatedness", "selection"]
    for fit in registry():
        assert isinstance(fit, Fit) and fit.summary.endswith(".json"), fit.name
        assert fit.schema_dict()["type"] == "object", fit.name


def test_settings_are_typed_and_frozen():
    s = ScalingSettings.from_dict(
        {"metric": "acc", "shots": 0, "emerged_margin": 0.1, "holdout": ["a", "b"], "predictors": ["flp"], "bootstrap": 5}
    )
    assert s.holdout == ("a", "b") and s.prompt is None
    with pytest.raises(AttributeError):
        s.shots = 1
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['shot'\]"):
        ScalingSettings.from_dict({"metric": "acc", "shot": 0})


@pytest.mark.workflow
def test_a_new_fit_module_is_planned_run_and_reported_with_no_other_file_edited(finished, tmp_path):
    work = tmp_path / "work"
    shutil.copytree(finished, work, symlinks=True)  # the smoke run's results too: only the new fit and the report run
    shutil.copy(TOY, work / "workflow/lmforecast/fits/toy.py")
    config = yaml.safe_load((work / "config.yaml").read_text())
    config["fit"]["toy"] = {"scale": 2.0}
    (work / "config.yaml").write_text(yaml.safe_dump(config))
    env = {"PYTHONPATH": str(work / "workflow")}  # the copy's package, with the toy fit in it

    # only the new fit and the report (which shows it) run, nothing before them (by modification times:
    # the copy's absolute paths differ from those the finished run recorded, which would rerun all)
    mtime = ("--rerun-triggers", "mtime")
    assert planned_rules(work, *mtime, env=env) == {"fit_toy": 1, "report": 1, "all": 1}
    snakemake(work, *mtime, env=env)

    assert yaml.safe_load((work / "results/fits/toy.json").read_text())["total"] > 0
    assert (work / "results/report/toy_tokens.png").stat().st_size > 1000
    page = (work / "results/report/index.html").read_text()
    assert '<section id="toy"><h2>Toy fit</h2>' in page and 'id="fig-toy_tokens"' in page
    cli = subprocess.run([f"{BIN}/lmforecast", "fit", "--help"], capture_output=True, text=True, env={**os.environ, **env})
    assert "toy" in cli.stdout
    config["fit"]["toy"] = {"scale": -1}  # its schema, from its module, validates its section before any job
    (work / "config.yaml").write_text(yaml.safe_dump(config))
    bad = snakemake(work, "-n", check=False, env=env)
    assert bad.returncode != 0 and "fit.toy.scale: -1 is less than or equal to the minimum of 0" in bad.stderr + bad.stdout
