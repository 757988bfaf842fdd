"""Analysis-only mode: imported ladder CSVs and lm-eval results JSON -> the tables, and the workflow on them."""

import copy
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
import yaml

from lmforecast import tables
from lmforecast.cli import main as cli
from lmforecast.config import ConfigError, validate
from lmforecast.measure.imports import ImportDataError, import_tables, read_ladder, read_lm_eval

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
ANALYSIS = yaml.safe_load((ROOT / "config" / "analysis.yaml").read_text())
BIN = str(Path(sys.executable).parent)

HEADER = "step,tokens,flops,val/web,val/code,arc/acc,arc/bpb"
LADDER = {
    "step": "step",
    "tokens": "tokens",
    "flops": "flops",
    "domains": r"val/(?P<domain>\w+)",
    "tasks": r"(?P<task>arc)/(?P<metric>acc|bpb)",
}


def csv(tmp_path, *lines, name="r1.csv", header=HEADER):
    path = tmp_path / name
    path.write_text("\n".join([header, *lines]) + "\n")
    return path


def results_json(tmp_path, name="r1-step200.json", **override):
    data = {
        "results": {
            "sciq": {
                "alias": "sciq",
                "acc,none": 0.6,
                "acc_stderr,none": 0.01,
                "acc_norm,none": 0.55,
                "acc_norm_stderr,none": "N/A",
            },
            "mmlu": {"alias": "mmlu", "acc,none": 0.3},
            "mmlu_law": {"alias": " - law", "acc,none": 0.28},
        },
        "groups": {"mmlu": {"acc,none": 0.3}},
        "group_subtasks": {"mmlu": ["mmlu_law"], "sciq": []},
        "n-shot": {"sciq": 0, "mmlu_law": 5},
        "n-samples": {"sciq": {"original": 1000, "effective": 1000}},
        "config": {"model": "hf", "model_args": "pretrained=x"},
        **override,
    }
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def spec(tmp_path, ladder_files=None, lm_eval=None, **run_meta):
    out = {"runs": [{"name": "r1", "n_params": 1000, **run_meta}], "chance": {"arc": 0.25, "sciq": 0.25}}
    if ladder_files:
        out["ladder"] = {**LADDER, "files": [{"run": "r1", "path": str(p)} for p in ladder_files]}
    if lm_eval:
        out["lm_eval"] = lm_eval
    return out


# --- readers ----------------------------------------------------------------------


def test_ladder_csv_becomes_checkpoints_domain_losses_and_task_scores(tmp_path):
    path = csv(tmp_path, "100,1000,6e6,3.5,2.5,0.3,1.2", "200,2000,1.2e7,3.0,2.0,0.4,1.0")
    rows = read_ladder(path, "r1", {**LADDER, "shots": 0}, {"arc": 0.25})
    assert [(c["step"], c["tokens"], c["flops"]) for c in rows["checkpoints"]] == [(100, 1000, 6e6), (200, 2000, 1.2e7)]
    assert {(d["step"], d["domain"], d["loss"]) for d in rows["domain_losses"]} == {
        (100, "web", 3.5),
        (100, "code", 2.5),
        (200, "web", 3.0),
        (200, "code", 2.0),
    }
    assert {(t["step"], t["metric"], t["value"], t["chance"]) for t in rows["task_scores"]} == {
        (100, "acc", 0.3, 0.25),
        (200, "acc", 0.4, 0.25),
        (100, "bpb", 1.2, 0.25),
        (200, "bpb", 1.0, 0.25),
    }


def test_ladder_columns_by_explicit_map(tmp_path):
    path = csv(tmp_path, "100,1000,6e6,3.5,2.5,0.3,1.2")
    cfg = {**LADDER, "domains": {"val/web": "web"}, "tasks": {"arc/acc": {"task": "arc_easy", "metric": "acc"}}}
    rows = read_ladder(path, "r1", cfg, {})
    assert [d["domain"] for d in rows["domain_losses"]] == ["web"]
    assert [(t["task"], t["metric"], t["chance"]) for t in rows["task_scores"]] == [("arc_easy", "acc", 0.0)]


def test_lm_eval_results_skip_group_aggregates_and_stderr(tmp_path):
    rows = read_lm_eval(results_json(tmp_path), "r1", 200, {}, {"sciq": 0.25})
    got = {(r["task"], r["metric"]): (r["value"], r["shots"], r["n"]) for r in rows}
    # mmlu is a group (aggregate of its subtasks): only the subtask is imported; n unknown without n-samples
    assert got == {("sciq", "acc"): (0.6, 0, 1000), ("sciq", "acc_norm"): (0.55, 0, 1000), ("mmlu_law", "acc"): (0.28, 5, None)}
    assert all(r["run"] == "r1" and r["step"] == 200 and r["prompt"] == "default" for r in rows)


def test_import_combines_sources_and_writes_every_table_with_its_schema(tmp_path):
    ladder = csv(tmp_path, "100,1000,6e6,3.5,2.5,0.3,1.2", "200,2000,1.2e7,3.0,2.0,0.4,1.0")
    files = [
        {"path": str(results_json(tmp_path)), "run": "r1", "step": 200},
        {"path": str(results_json(tmp_path, "r1-step300.json")), "run": "r1", "step": 300},
    ]
    built = import_tables(spec(tmp_path, [ladder], {"files": files, "tasks": ["sciq"]}, tokens_per_step=10, lr=0.01))
    for name, table in built.items():
        assert table.schema.equals(tables.SCHEMAS[name]), name
    ck = pl.from_arrow(built["checkpoints"])
    # step 300 is known only from its lm-eval file: tokens from tokens_per_step, compute 6 N D
    assert ck.rows() == [
        ("r1", 100, 1000, 6e6, None, None, None),
        ("r1", 200, 2000, 1.2e7, None, None, None),
        ("r1", 300, 3000, 6.0 * 1000 * 3000, None, None, None),
    ]
    runs = pl.from_arrow(built["runs"]).row(0, named=True)
    assert (runs["n_params_nonembed"], runs["objective"], runs["mixture"], runs["lr"], runs["tokens_planned"]) == (
        1000,
        "clm",
        "default",
        0.01,
        3000,
    )
    assert pl.from_arrow(built["task_scores"]).filter(pl.col("task") == "sciq").height == 4
    assert built["example_scores"].num_rows == 0 and built["sft_scores"].num_rows == 0


# --- rejections: each names the file, the row (CSV line) and the column or field ---------


def _bad_csv(tmp_path, lines, header=HEADER, ladder=None):
    path = csv(tmp_path, *lines, header=header)
    s = spec(tmp_path, [path])
    s["ladder"].update(ladder or {})
    return s, path


BAD_LADDERS = [
    (
        "missing column",
        ["100,1000,3.5,2.5,0.3,1.2"],
        "step,tokens,val/web,val/code,arc/acc,arc/bpb",
        None,
        r": header: column\(s\) 'flops' \(flops\) missing; expected the columns that import.ladder names",
    ),
    (
        "NaN",
        ["100,1000,6e6,3.5,2.5,0.3,1.2", "200,2000,1.2e7,nan,2.0,0.4,1.0"],
        HEADER,
        None,
        r": line 3, column 'val/web': 'nan'; expected a finite number",
    ),
    ("empty cell", ["100,1000,6e6,3.5,,0.3,1.2"], HEADER, None, r": line 2, column 'val/code': empty; expected a number"),
    ("not a number", ["100,1000,6e6,3.5,2.5,high,1.2"], HEADER, None, r": line 2, column 'arc/acc': 'high' is not a number"),
    (
        "negative compute",
        ["100,1000,-6e6,3.5,2.5,0.3,1.2"],
        HEADER,
        None,
        r": line 2, column 'flops': '-6e6' is negative; expected a value >= 0",
    ),
    ("negative tokens", ["100,-1000,6e6,3.5,2.5,0.3,1.2"], HEADER, None, r": line 2, column 'tokens': '-1000' is negative"),
    (
        "fractional step",
        ["100.5,1000,6e6,3.5,2.5,0.3,1.2"],
        HEADER,
        None,
        r": line 2, column 'step': '100.5'; expected a whole number",
    ),
    (
        "same step twice",
        ["100,1000,6e6,3.5,2.5,0.3,1.2", "200,2000,1.2e7,3.0,2.0,0.4,1.0", "200,2000,1.2e7,3.0,2.0,0.4,1.0"],
        HEADER,
        None,
        r": line 4, column 'step': step 200 already on line 3; expected one row per step",
    ),
    (
        "same task/metric twice",
        ["100,1000,6e6,3.5,2.5,0.3,1.2"],
        HEADER,
        {"tasks": {"arc/acc": {"task": "arc", "metric": "acc"}, "arc/bpb": {"task": "arc", "metric": "acc"}}},
        r": header: columns 'arc/acc' and 'arc/bpb' both give task 'arc' metric 'acc'; expected each task/metric once",
    ),
    (
        "pattern matches no column",
        ["100,1000,6e6,3.5,2.5,0.3,1.2"],
        HEADER,
        {"domains": r"eval/(?P<domain>\w+)"},
        r": header \(import.ladder.domains\): no column matches",
    ),
]


@pytest.mark.parametrize("name,lines,header,ladder,message", BAD_LADDERS, ids=[c[0] for c in BAD_LADDERS])
def test_bad_ladder_csv_is_rejected_naming_file_line_and_column(tmp_path, name, lines, header, ladder, message):
    s, path = _bad_csv(tmp_path, lines, header, ladder)
    with pytest.raises(ImportDataError, match=re.escape(str(path)) + message):
        import_tables(s)


def _files(*entries):
    return {"files": [{"path": str(p), "run": run, "step": step} for p, run, step in entries]}


def test_lm_eval_duplicate_key_in_one_file(tmp_path):
    path = tmp_path / "r.json"
    path.write_text('{"results": {"sciq": {"acc,none": 0.5, "acc,none": 0.6}}, "n-shot": {"sciq": 0}}')
    with pytest.raises(ImportDataError, match=re.escape(f"{path}: key 'acc,none' appears twice in one object")):
        import_tables(spec(tmp_path, lm_eval=_files((path, "r1", 1)), tokens_per_step=1))


def test_lm_eval_nan_score(tmp_path):
    path = tmp_path / "r.json"
    path.write_text('{"results": {"sciq": {"acc,none": NaN}}, "n-shot": {"sciq": 0}}')
    with pytest.raises(ImportDataError, match=re.escape(f"{path}: field results.sciq.'acc,none': nan is not a finite number")):
        import_tables(spec(tmp_path, lm_eval=_files((path, "r1", 1)), tokens_per_step=1))


def test_lm_eval_missing_results_and_missing_shots(tmp_path):
    path = results_json(tmp_path, results={})
    with pytest.raises(ImportDataError, match=re.escape(f"{path}: field 'results' missing or empty")):
        import_tables(spec(tmp_path, lm_eval=_files((path, "r1", 1)), tokens_per_step=1))
    path = results_json(tmp_path, **{"n-shot": {}})
    with pytest.raises(ImportDataError, match=re.escape(f"{path}: field n-shot.mmlu_law is None; expected a number of shots")):
        import_tables(spec(tmp_path, lm_eval=_files((path, "r1", 1)), tokens_per_step=1))


def test_lm_eval_same_checkpoint_twice(tmp_path):
    a, b = results_json(tmp_path, "a.json"), results_json(tmp_path, "b.json")
    with pytest.raises(ImportDataError, match=re.escape(f"{b}: run 'r1' step 7 already imported from {a}")):
        import_tables(spec(tmp_path, lm_eval=_files((a, "r1", 7), (b, "r1", 7)), tokens_per_step=1))


def test_score_in_both_ladder_and_lm_eval(tmp_path):
    ladder = csv(tmp_path, "200,2000,1.2e7,3.0,2.0,0.4,1.0", header=HEADER.replace("arc/", "sciq/"))
    s = spec(tmp_path, [ladder], _files((results_json(tmp_path), "r1", 200)))
    s["ladder"]["tasks"] = r"(?P<task>sciq)/(?P<metric>acc|bpb)"
    with pytest.raises(
        ImportDataError, match=r"task 'sciq' metric 'acc' \(0-shot\) of run 'r1' step 200 is also in " + re.escape(str(ladder))
    ):
        import_tables(s)


def test_lm_eval_file_that_the_pattern_does_not_name(tmp_path):
    (tmp_path / "ladder__r1-step5").mkdir()
    results_json(tmp_path / "ladder__r1-step5", "results_2025.json")
    stray = results_json(tmp_path, "summary.json")
    lm = {"dir": str(tmp_path), "pattern": r"ladder__(?P<run>\w+)-step(?P<step>\d+)/results_.*\.json"}
    with pytest.raises(
        ImportDataError, match=re.escape(f"{stray}: the path 'summary.json' does not match import.lm_eval.pattern")
    ):
        import_tables(spec(tmp_path, lm_eval=lm, tokens_per_step=1))
    stray.unlink()
    built = import_tables(spec(tmp_path, lm_eval=lm, tokens_per_step=1))
    assert pl.from_arrow(built["checkpoints"]).select("run", "step").rows() == [("r1", 5)]


def test_unknown_run_and_checkpoint_without_tokens(tmp_path):
    path = results_json(tmp_path)
    with pytest.raises(ImportDataError, match=re.escape(f"{path}: run 'r9' is not in import.runs; expected one of ['r1']")):
        import_tables(spec(tmp_path, lm_eval=_files((path, "r9", 1))))
    with pytest.raises(
        ImportDataError,
        match=re.escape(f"{path}: run 'r1' step 1 is in no ladder file, and import.runs entry 'r1' has no tokens_per_step"),
    ):
        import_tables(spec(tmp_path, lm_eval=_files((path, "r1", 1))))


def test_cli_rejects_bad_input_and_writes_no_table(tmp_path):
    ladder = csv(tmp_path, "100,1000,6e6,3.5,2.5,0.3,1.2", "200,2000,1.2e7,3.0,2.0,0.4,nan")
    out = tmp_path / "tables"
    with pytest.raises(SystemExit, match=re.escape(f"{ladder}: line 3, column 'arc/bpb'")):
        cli(["import", "--spec", json.dumps(spec(tmp_path, [ladder])), "--out-dir", str(out)])
    assert not out.exists()
    ladder.write_text(ladder.read_text().replace("nan", "1.0"))
    cli(["import", "--spec", json.dumps(spec(tmp_path, [ladder])), "--out-dir", str(out)])
    assert sorted(p.stem for p in out.glob("*.parquet")) == sorted(tables.SCHEMAS)


# --- the config: either runs to train or an import section ----------------------------


def analysis_config(edit=None):
    config = copy.deepcopy(ANALYSIS)
    if edit:
        edit(config)
    return config


CONFIG_CASES = [
    (
        "runs and import",
        lambda c: c.update(runs=DEFAULT["runs"]),
        r"runs: an analysis-only config \(with 'import'\) trains nothing",
    ),
    ("no source", lambda c: [c["import"].pop(k) for k in ("ladder", "lm_eval")], r"import: neither 'ladder' nor 'lm_eval'"),
    (
        "lm_eval both ways",
        lambda c: c["import"]["lm_eval"].update(files=[{"path": "x.json", "run": "a", "step": 1}]),
        r"import\.lm_eval: expected either 'dir' with 'pattern' .* or 'files'",
    ),
    (
        "pattern without step",
        lambda c: c["import"]["lm_eval"].update(pattern=r"(?P<run>\w+)\.json"),
        r"import\.lm_eval\.pattern: .* lacks the named group\(s\) \['step'\]",
    ),
    (
        "bad regex",
        lambda c: c["import"]["ladder"].update(domains="eval/(?P<domain>"),
        r"import\.ladder\.domains: .* is not a valid regex",
    ),
    (
        "domains neither regex nor map",
        lambda c: c["import"]["ladder"].update(domains=3),
        r"import\.ladder\.domains: 3 is not valid; expected a regex with the named group 'domain'",
    ),
    (
        "run without n_params",
        lambda c: c["import"]["runs"][0].pop("n_params"),
        r"import\.runs\[0\]: 'n_params' is a required property",
    ),
    (
        "held-out run not imported",  # was accepted, and every family then fitted without a held-out run
        lambda c: c["fit"]["scaling"].update(holdout=["web-700M", "no-such-run"]),
        r"fit\.scaling\.holdout\[1\]: unknown run 'no-such-run'; expected a name from import\.runs",
    ),
    (
        "chance above 1",
        lambda c: c["import"]["chance"].update(sciq=1.5),
        r"import\.chance\.sciq: 1\.5 is greater than the maximum of 1",
    ),
    (
        "task size 0",
        lambda c: c["import"].update(task_sizes={"sciq": 0}),
        r"import\.task_sizes\.sciq: 0 is less than the minimum of 1",
    ),
]


def test_analysis_config_is_valid_alone_and_merged_over_the_default():
    validate(analysis_config())
    merged = {**copy.deepcopy(DEFAULT), **analysis_config()}  # what snakemake --configfile makes of it
    validate(merged)


@pytest.mark.parametrize("name,edit,message", CONFIG_CASES, ids=[c[0] for c in CONFIG_CASES])
def test_bad_import_config_names_the_field(name, edit, message):
    with pytest.raises(ConfigError, match=message):
        validate(analysis_config(edit))


def test_config_with_neither_runs_nor_import():
    config = copy.deepcopy(DEFAULT)
    config["runs"] = []
    with pytest.raises(ConfigError, match=r"runs: empty; expected at least one run to train, or an 'import' section"):
        validate(config)
    del config["world"]
    with pytest.raises(ConfigError, match=r"\(top level\): 'world' is a required property"):
        validate(config)


# --- the workflow on config/analysis.yaml ---------------------------------------------


def snakemake(workdir, *args):
    cmd = [f"{BIN}/snakemake", "--cores", "2", "--configfile", "config/analysis.yaml", *args]
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"}
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, env=env, check=False)
    assert proc.returncode == 0, f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


@pytest.mark.workflow
def test_analysis_workflow_imports_then_fits_without_training(tmp_path):
    for name in ("workflow", "resources", "config"):
        shutil.copytree(ROOT / name, tmp_path / name)
    plan = snakemake(tmp_path, "--dry-run")
    rules = set(re.findall(r"^(?:local)?rule (\w+):", plan, re.MULTILINE))
    assert rules == {"import_tables", "fit_scaling", "report", "all"}
    snakemake(tmp_path)
    preds = pl.read_parquet(tmp_path / "results/fits/scaling_predictions.parquet")
    assert set(preds["run"]) == {"web-700M"}  # the largest compute, held out
    flp = preds.filter(pl.col("predictor") == "flp")
    assert set(flp["task"]) == {"arc_easy", "piqa", "lambada_openai", "sciq"}  # ladder and lm-eval tasks with acc
    # the example's truth (make_examples.py): loss exponent 0.15, arc_easy score slope -0.30 per nat
    params = pl.read_parquet(tmp_path / "results/fits/scaling_params.parquet")
    params = params.filter(pl.col("predictor") == "flp")
    alpha = params.filter(pl.col("param") == "alpha").row(0, named=True)
    assert abs(alpha["value"] - 0.15) < 3 * alpha["stderr"]
    slope = params.filter((pl.col("stage") == "score") & (pl.col("task") == "arc_easy") & (pl.col("param") == "slope")).row(
        0, named=True
    )
    assert abs(slope["value"] + 0.30) < 3 * slope["stderr"]
    assert (flp["abs_error"] < 0.05).all()
    assert (tmp_path / "results/report/index.html").stat().st_size > 10_000


# --- derived columns, per-file maps, metric names, task groups, 0.3-era files, ranges ---------


def test_per_file_column_maps_and_derived_tokens_and_flops(tmp_path):
    """r1 gives GFLOPs; r2 has no tokens or FLOPs columns (tokens = step x tokens_per_step, FLOPs = 6 N D)
    and other column names; r3 has FLOPs per token."""
    r1 = csv(tmp_path, "100,1000,0.006,3.5,2.5,0.3,1.2", name="r1.csv")
    r2 = csv(tmp_path, "10,3.0,0.35", name="r2.csv", header="iter,loss/web,arc/len_norm")
    r3 = csv(tmp_path, "5,2.9,0.4", name="r3.csv", header="iter,loss/web,arc/len_norm")
    imp = {
        "runs": [{"name": n, "n_params": 2000, "n_params_nonembed": 1000} for n in ("r1", "r2", "r3")],
        "chance": {"arc": 0.25},
        "ladder": {
            **LADDER,
            "scales": {"flops": 1e9},
            "files": [
                {"run": "r1", "path": str(r1)},
                {"run": "r2", "path": str(r2), "step": "iter", "tokens_per_step": 64, "flops_per_token": "6N"}
                | {"domains": r"loss/(?P<domain>\w+)"}
                | {"tasks": {"arc/len_norm": {"task": "arc", "metric": "len_norm"}}},
                {"run": "r3", "path": str(r3), "step": "iter", "tokens_per_step": 64, "flops_per_token": 7.0e3},
            ],
        },
        "metric_names": {"len_norm": "acc_norm", "bpb": "bits_per_byte"},
    }
    imp["ladder"]["files"][2] |= {"domains": r"loss/(?P<domain>\w+)", "tasks": r"(?P<task>arc)/(?P<metric>len_norm)"}
    built = import_tables(imp)
    ck = {r["run"]: (r["step"], r["tokens"], r["flops"]) for r in pl.from_arrow(built["checkpoints"]).iter_rows(named=True)}
    assert ck == {"r1": (100, 1000, 0.006e9), "r2": (10, 640, 6.0 * 1000 * 640), "r3": (5, 320, 7.0e3 * 320)}
    scores = pl.from_arrow(built["task_scores"])
    assert sorted(scores.filter(pl.col("run") == "r1")["metric"]) == ["acc", "bits_per_byte"]
    assert scores.filter(pl.col("run") == "r2")["metric"].to_list() == ["acc_norm"]


def test_an_olmo_ladder_export_reads_with_its_own_column_names(tmp_path):
    """The column names of the OLMo ladder's W&B exports (allenai/OLMo, scripts/scaling/data: `_step`, GFLOPs, task bits
    per byte and len_norm under two prefixes, val and test splits, soft scores beside them); values rounded from the
    first row of its peteish-moreeval/190M-1xC.csv (the test split's bpb and the soft score changed, to tell them apart)."""
    header = (
        "_step,eval/c4_en-validation/CrossEntropyLoss,eval/downstream_bpb/hellaswag_val_rc_5shot_bpb,"
        "eval/downstream_bpb/hellaswag_test_rc_5shot_bpb,eval/downstream/hellaswag_val_rc_5shot_len_norm,"
        "eval/downstream_soft/hellaswag_val_rc_5shot_soft,throughput/total_tokens,throughput/total_training_Gflops"
    )
    path = csv(tmp_path, "200,6.0,1.7,1.8,0.24,0.31,104857600.0,199585036.4", header=header)
    imp = {
        "runs": [{"name": "r1", "n_params": 190_000_000}],
        "chance": {"hellaswag": 0.25},
        "ladder": {
            "files": [{"run": "r1", "path": str(path)}],
            "step": "_step",
            "tokens": "throughput/total_tokens",
            "flops": "throughput/total_training_Gflops",
            "scales": {"flops": 1.0e9},
            "domains": r"eval/(?P<domain>[^/]+)-validation/CrossEntropyLoss",
            "tasks": r"eval/downstream(?:_bpb)?/(?P<task>\w+?)_val_rc_5shot_(?P<metric>bpb|len_norm)",
            "shots": 5,
        },
        "metric_names": {"len_norm": "acc_norm", "bpb": "bits_per_byte"},
    }
    built = {k: pl.from_arrow(v) for k, v in import_tables(imp).items()}
    assert built["checkpoints"].select("step", "tokens", "flops").row(0) == (200, 104857600, pytest.approx(199585036.4e9))
    scores = built["task_scores"].sort("metric")
    assert scores.select("task", "metric", "shots", "value").rows() == [
        ("hellaswag", "acc_norm", 5, 0.24),
        ("hellaswag", "bits_per_byte", 5, 1.7),  # the val split's, not the test split's 1.8
    ]
    assert built["domain_losses"].select("domain", "loss").rows() == [("c4_en", 6.0)]


def test_weighted_task_group_is_averaged_where_every_member_is_scored(tmp_path):
    header = "step,tokens,flops,val/web,mmlu_a/acc,mmlu_b/acc"
    path = csv(tmp_path, "100,1000,6e6,3.5,0.3,0.6", "200,2000,1.2e7,3.0,0.4,", header=header)
    imp = spec(tmp_path, [path])
    imp["ladder"]["tasks"] = r"(?P<task>mmlu_\w)/(?P<metric>acc)"
    imp["chance"] = {"mmlu_a": 0.25, "mmlu_b": 0.25}
    imp["task_groups"] = [{"name": "mmlu", "tasks": {"mmlu_a": 100, "mmlu_b": 300}}]
    with pytest.raises(ImportDataError, match="line 3, column 'mmlu_b/acc': empty"):
        import_tables(imp)  # an empty cell is an error, not a missing score
    csv(tmp_path, "100,1000,6e6,3.5,0.3,0.6", "200,2000,1.2e7,3.0,0.4,0.8", header=header)
    group = pl.from_arrow(import_tables(imp)["task_scores"]).filter(pl.col("task") == "mmlu")
    assert group["value"].to_list() == pytest.approx([0.525, 0.7]) and group["chance"].to_list() == [0.25, 0.25]
    imp["task_groups"] = [{"name": "mmlu", "tasks": ["mmlu_a", "mmlu_c"]}]
    with pytest.raises(ImportDataError, match=r"task_groups\[0\] \(mmlu\): tasks \['mmlu_c'\] have no score"):
        import_tables(imp)


def test_lm_eval_0_3_era_results_take_shots_from_the_config(tmp_path):
    """The format of EleutherAI/pythia's evals (lm-evaluation-harness 0.3): metrics without filters, one config."""
    data = {
        "results": {"piqa": {"acc": 0.59, "acc_stderr": 0.01, "acc_norm": 0.6, "acc_norm_stderr": 0.01}},
        "versions": {"piqa": 0},
        "config": {"model": "hf-causal", "num_fewshot": 0, "limit": None},
    }
    path = tmp_path / "70m_step1000.json"
    path.write_text(json.dumps(data))
    rows = read_lm_eval(path, "r1", 1000, {}, {"piqa": 0.5})
    assert {(r["metric"], r["value"], r["shots"]) for r in rows} == {("acc", 0.59, 0), ("acc_norm", 0.6, 0)}


def test_number_of_examples_from_an_accuracy_stderr_where_a_file_has_no_n_samples(tmp_path):
    """lm-eval before 0.4.3 (Pythia's files) gives no n-samples; its acc_stderr is the sample standard deviation over
    sqrt(n), so n = p (1 - p) / se^2 + 1. The figures are pythia-70m-deduped's wsc at step 13000 (104 examples)."""
    data = {
        "results": {
            "wsc": {"acc": 0.36538461538461536, "acc_stderr": 0.0474473339327792},
            "piqa": {"acc": 0.6, "acc_stderr": 0.0123},  # not a whole number of examples: unknown
            "sciq": {"acc": 0.6, "acc_stderr": "N/A"},
        },
        "config": {"num_fewshot": 0},
    }
    path = tmp_path / "step13000.json"
    path.write_text(json.dumps(data))
    assert {r["task"]: r["n"] for r in read_lm_eval(path, "r1", 13000, {}, {})} == {"wsc": 104, "piqa": None, "sciq": None}


def test_task_sizes_fill_what_the_files_do_not_say(tmp_path):
    """import.task_sizes: a ladder CSV's task gets its n; a file's own n-samples is kept; a task no file has is an error;
    a group's n is the effective one, whose binomial error is its weighted mean's: mmlu_a 0.3 of 100 and mmlu_b 0.6 of
    300 weighted by size: var = (1/4)^2 0.21/100 + (3/4)^2 0.24/300, p = 0.525, n = p (1 - p) / var = 429.0;
    weighted equally: var = (1/2)^2 (0.21/100 + 0.24/300), p = 0.45, n = 341.4."""
    header = "step,tokens,flops,val/web,mmlu_a/acc,mmlu_b/acc"
    imp = spec(tmp_path, [csv(tmp_path, "100,1000,6e6,3.5,0.3,0.6", "200,2000,1.2e7,3.0,0.4,0.8", header=header)])
    imp["ladder"]["tasks"] = r"(?P<task>mmlu_\w)/(?P<metric>acc)"
    imp["lm_eval"] = {"files": [{"path": str(results_json(tmp_path)), "run": "r1", "step": 200}], "tasks": ["sciq"]}
    imp["task_sizes"] = {"mmlu_a": 100, "mmlu_b": 300, "sciq": 7}
    imp["task_groups"] = [
        {"name": "by_size", "tasks": {"mmlu_a": 100, "mmlu_b": 300}},
        {"name": "equal", "tasks": ["mmlu_a", "mmlu_b"]},
    ]
    scores = pl.from_arrow(import_tables(imp)["task_scores"])
    at_100 = scores.filter((pl.col("step") == 100) | (pl.col("task") == "sciq"))  # sciq: the lm-eval file, step 200
    assert dict(at_100.select("task", "n").iter_rows()) == {
        "mmlu_a": 100,
        "mmlu_b": 300,
        "sciq": 1000,  # the file's n-samples
        "by_size": 429,
        "equal": 341,
    }
    imp["task_sizes"] = {"mmlu_c": 10}
    with pytest.raises(ImportDataError, match=r"import\.task_sizes: tasks \['mmlu_c'\] have no score in any imported file"):
        import_tables(imp)


def test_task_perplexity_becomes_a_held_out_domain_loss(tmp_path):
    """import.perplexity_losses: ln(ppl) of a task as a domain loss (Pythia's lambada_openai), checked first."""
    header = "step,tokens,flops,lam/acc,lam/ppl"
    imp = spec(tmp_path, [csv(tmp_path, "100,1000,6e6,0.2,40.0", "200,2000,1.2e7,0.4,10.0", header=header)])
    imp["ladder"] = {k: v for k, v in imp["ladder"].items() if k != "domains"} | {"tasks": r"(?P<task>lam)/(?P<metric>\w+)"}
    imp["perplexity_losses"] = {"lam": "ppl"}
    losses = pl.from_arrow(import_tables(imp)["domain_losses"])
    assert losses["domain"].to_list() == ["lam", "lam"] and losses["loss"].to_list() == pytest.approx([3.6889, 2.3026], abs=1e-4)
    imp["perplexity_losses"] = {"lam": "perplexity"}
    with pytest.raises(ImportDataError, match=r"perplexity_losses.lam: no task_scores .* \(its metrics: \['acc', 'ppl'\]\)"):
        import_tables(imp)
    imp["perplexity_losses"] = {"lam": "acc"}
    with pytest.raises(ImportDataError, match="metric 'acc' is 0.2; expected a perplexity >= 1"):
        import_tables(imp)


@pytest.mark.parametrize(
    "lines, message",
    [
        (["100,1000,6e6,3.5,2.5,1.3,1.2"], r"metric 'acc' is 1.3; expected a share of examples in \[0, 1\]"),
        (["100,1000,6e6,3.5,2.5,0.3,1.2", "200,900,1.2e7,3.0,2.0,0.4,1.0"], "step 200 has tokens 900, fewer than step 100"),
    ],
)
def test_imported_values_are_range_checked(tmp_path, lines, message):
    with pytest.raises(ImportDataError, match=message):
        import_tables(spec(tmp_path, [csv(tmp_path, *lines)]))


def test_bad_imported_file_stops_config_validation(tmp_path):
    config = analysis_config()
    bad = csv(tmp_path, "100,1000,6e6,3.5,2.5,1.3,1.2")
    config["import"] = {**spec(tmp_path, [bad]), "chance": {}}
    with pytest.raises(ConfigError, match="expected a share of examples"):
        validate(config)


@pytest.mark.parametrize(
    "example, n_runs, n_checkpoints, n_tasks",
    [("pythia-evals", 15, 15 * 27, 8), ("mlfoundations-scaling", 104, 104, 47)],
)
def test_shipped_public_examples_import_and_validate(example, n_runs, n_checkpoints, n_tasks, monkeypatch, capsys):
    """config/examples/EXAMPLE.yaml merged onto the default config as `snakemake --configfile` merges it (run
    from the repo root): valid, and no key of its sections silently taken from the default (no warning)."""
    from lmforecast.config import load

    monkeypatch.chdir(ROOT)
    example_config = yaml.safe_load((ROOT / "config" / "examples" / f"{example}.yaml").read_text())
    load(Path("config") / "examples" / f"{example}.yaml")
    assert capsys.readouterr().err == ""
    built = {k: pl.from_arrow(v) for k, v in import_tables(example_config["import"]).items()}
    assert built["runs"].height == n_runs and built["checkpoints"].height == n_checkpoints
    assert built["task_scores"]["task"].n_unique() == n_tasks


def test_task_relatedness_runs_on_the_pythia_import_and_point_relatedness_says_why_not(tmp_path, monkeypatch):
    """The published Pythia evaluations hold each task's accuracy per checkpoint and no per-example scores:
    fit.relatedness with `metric: acc` correlates the tasks over the 15 runs' 405 checkpoints, and says why
    point relatedness does not run; left at its default (the NLL of the correct answer) it is refused by name."""
    from lmforecast.fits.registry import registry
    from lmforecast.measure.imports import write_tables

    monkeypatch.chdir(ROOT)
    example = yaml.safe_load((ROOT / "config" / "examples" / "pythia-evals.yaml").read_text())
    config = copy.deepcopy(DEFAULT) | {"runs": [], "import": example["import"]}
    config["fit"]["relatedness"] |= example["fit"]["relatedness"]  # valid: test_shipped_public_examples_import_and_validate
    assert "relatedness" in [f.name for f in registry().configured(config, imported=True)]
    asked = copy.deepcopy(config)
    asked["fit"]["relatedness"]["metric"] = "logprob_correct"
    with pytest.raises(
        ConfigError, match=r"fit\.relatedness\.metric: 'logprob_correct' is not among the imported metrics \['acc'"
    ):
        validate(asked)
    del asked["fit"]["relatedness"]["metric"]  # the default: the fit is left out, the report says why
    assert "relatedness" not in [f.name for f in registry().configured(asked, imported=True)]

    write_tables(import_tables(example["import"]), tmp_path / "tables")
    spec = json.dumps(config["fit"]["relatedness"])
    out = {"--tables": tmp_path / "tables", "--fits": tmp_path / "fits", "--report-dir": tmp_path / "report"}
    cli(["fit", "relatedness", "--spec", spec, *[str(x) for kv in out.items() for x in kv]])
    matrix = pl.read_parquet(tmp_path / "fits" / "task_relatedness.parquet")
    assert matrix.height == 8 * 8 and set(matrix["n_checkpoints"]) == {15 * 27}
    r = dict(zip(zip(matrix["task_a"], matrix["task_b"]), matrix["pearson_r"]))
    assert r[("arc_easy", "piqa")] > 0.9 and r[("arc_easy", "piqa")] == r[("piqa", "arc_easy")]
    note = json.loads((tmp_path / "fits" / "point_relatedness.json").read_text())["note"]
    assert "point relatedness needs per-example scores (example_scores: example, logprob_correct" in note
    assert pl.read_parquet(tmp_path / "fits" / "point_relatedness.parquet").height == 0
    assert (tmp_path / "report" / "task_relatedness.png").stat().st_size > 0
    section = registry()["relatedness"].section(tmp_path / "fits", tmp_path / "report")
    assert 'id="fig-task_relatedness"' in section and "point relatedness needs per-example scores" in section
