"""The back-tests that chose fit.scaling.ladder's defaults (step1: auto; anchor: auto), on every set at hand with
more than one token budget per size or with a task loss, without their targets:

- mlfoundations (config/examples/mlfoundations-scaling.yaml): inside its ladder (the runs below 1B: 11M-154M
  fitted, the 412M runs predicted), `ladder` and the ensemble of `direct, ladder` with each step 1;
- Pythia (config/examples/pythia-evals.yaml): inside (70M-1.4B fitted, the 2.8B runs predicted), the same, and the
  anchor on LAMBADA, whose imported loss (ln perplexity of the target word) is that task's own loss;
- the default sweep (a results/tables directory of `make run`): its back-test (the largest compute held out).

Mean relative error (mean absolute error on the default sweep) of each variant, bootstrap 0:

    PYTHONPATH=workflow python resources/public/choose_defaults.py [RESULTS_TABLES_DIR]
"""

import sys

import polars as pl
import yaml

from lmforecast.fits.scaling import ScalingSettings
from lmforecast.fits.scaling.backtest import backtest
from lmforecast.measure.imports import import_tables

STEP1 = ("compute", "params_tokens", "params_tokens_tied")


def below(cfg, tables, max_params, rung):
    """The imported tables of the runs below `max_params` (their rows alone), and the runs of `rung` among them."""
    small = [r["name"] for r in cfg["import"]["runs"] if r["n_params"] < max_params]
    part = {k: (v.filter(pl.col("run").is_in(small)) if "run" in v.columns else v) for k, v in tables.items()}
    return part, [r for r in small if rung in r]


def inside(path, max_params, rung):
    """The example's tables without its targets, and the largest rung below them as the held-out runs."""
    cfg = yaml.safe_load(open(path))
    tables = {k: pl.from_arrow(v) for k, v in import_tables(cfg["import"]).items()}
    part, held = below(cfg, tables, max_params, rung)
    return part, cfg["fit"]["scaling"] | {"holdout": held}


def splits(max_params: str, rungs: str) -> list[tuple[float, str]]:
    """Inside splits from the command line's MAX_PARAMS and RUNG, each a comma-separated list paired in order (a
    rolling origin: '1e9,2e8' '-412M-,-154M-' holds out the 412M runs from 11M-154M, then the 154M runs from 11M-79M)."""
    sizes, names = max_params.split(","), rungs.split(",")
    if len(sizes) != len(names):
        raise SystemExit(f"MAX_PARAMS ({max_params}) and RUNG ({rungs}) must list as many splits")
    return [(float(size), name) for size, name in zip(sizes, names)]


def backtest_inside(path, inside_splits, settings: dict):
    """The back-test of each inside split under the example's settings updated by `settings` (a shallow merge),
    their held-out predictions pooled (each split holds out other runs) and their reports joined."""
    preds, reports = [], []
    for max_params, rung in inside_splits:
        tables, shipped = inside(path, max_params, rung)
        _, p, report = backtest(tables, ScalingSettings.from_dict(shipped | settings), workers=2)
        preds.append(p)
        reports += [f"inside, {rung} held out:", *report]
    return pl.concat(preds), reports


def measure(label, tables, sc, error="rel_error"):
    _, preds, report = backtest(tables, ScalingSettings.from_dict(sc | {"bootstrap": 0}), workers=2)
    stats = preds.group_by("predictor").agg(pl.col(error).mean(), pl.len()).sort("predictor")
    skipped = [line.strip() for line in report if "not fitted" in line or "skipped" in line]
    print(label, dict(stats.select("predictor", error).iter_rows()), "pairs", dict(stats.select("predictor", "len").iter_rows()))
    print("   ", "; ".join(skipped[:4]) or "every fit done", flush=True)


if __name__ == "__main__":  # the back-test's worker processes are spawned
    pair = {"predictors": ["direct", "ladder", "ensemble"], "ensemble_members": ["direct", "ladder"]}
    for name, path, max_params, rung in (
        ("mlfoundations", "config/examples/mlfoundations-scaling.yaml", 1e9, "-412M-"),
        ("pythia", "config/examples/pythia-evals.yaml", 5e9, "-2.8b"),
    ):
        tables, sc = inside(path, max_params, rung)
        for step1 in STEP1:
            measure(f"{name} inside, step1 {step1}:", tables, sc | pair | {"ladder": sc["ladder"] | {"step1": step1}})
        if name == "pythia":
            for anchor in (False, True):
                lambada = {"predictors": ["ladder"], "tasks": ["lambada_openai"], "ladder": sc["ladder"] | {"anchor": anchor}}
                measure(f"pythia inside, lambada_openai on its own loss, anchor {anchor}:", tables, sc | lambada)
    if len(sys.argv) > 1:
        cfg = yaml.safe_load(open("config/config.yaml"))["fit"]["scaling"]
        names = ("runs", "checkpoints", "domain_losses", "task_scores")
        tables = {n: pl.read_parquet(f"{sys.argv[1]}/{n}.parquet") for n in names}
        for step1 in STEP1:
            for anchor in (False, True, "auto"):
                sc = cfg | pair | {"ladder": {"step1": step1, "anchor": anchor}}
                measure(f"default sweep, step1 {step1}, anchor {anchor}:", tables, sc, "abs_error")
