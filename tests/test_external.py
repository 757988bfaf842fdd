"""External HF model directories and dataset tasks (ARC-Easy-, HellaSwag-like) through `lmforecast evaluate`."""

import copy
import dataclasses
import json
from pathlib import Path

import polars as pl
import pytest
import yaml
from test_tasks import ARC_ROWS, HELLASWAG_ROWS
from tiny import hf_llama_dir

from lmforecast.cli import _load_tasks, main
from lmforecast.config import ConfigError, validate
from lmforecast.data import tokenizer as tokenizer_lib
from lmforecast.data.world import read_documents
from lmforecast.measure.evaluate import evaluate_checkpoint
from lmforecast.measure.lm import HFLM, LlamaLM, load_lm
from lmforecast.settings import Evaluation
from lmforecast.train.model import load_model

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
DOMAINS = ("arithmetic", "code", "facts", "prose")
SYNTHETIC = ["fact_qa", "sentiment"]


@pytest.fixture(scope="module")
def world_dir(tiny_world, tmp_path_factory):
    out = tmp_path_factory.mktemp("world")
    main(["world", "--spec", json.dumps(dataclasses.asdict(tiny_world)), "--out", str(out)])
    return out


def _evaluate(args, spec, world_dir, tasks, examples, out):
    main(
        [
            "evaluate",
            "--spec",
            json.dumps(spec),
            *args,
            "--domains",
            *[str(world_dir / "domains" / f"{d}.jsonl") for d in DOMAINS],
            "--task-specs",
            *[str(ROOT / "resources" / "tasks" / f"{t}.yaml") for t in tasks],
            "--task-examples",
            *examples,
            "--domain-losses",
            str(out / "dl.parquet"),
            "--task-scores",
            str(out / "ts.parquet"),
            "--example-scores",
            str(out / "es.parquet"),
        ]
    )
    return {n: pl.read_parquet(out / f"{n}.parquet") for n in ("dl", "ts", "es")}


def _assert_frames_close(got, expected, rel):
    assert got.columns == expected.columns and got.height == expected.height
    for col in got.columns:
        if got[col].dtype == pl.Float64:
            assert got[col].to_list() == pytest.approx(expected[col].to_list(), rel=rel, abs=1e-6, nan_ok=True), col
        else:
            assert got[col].to_list() == expected[col].to_list(), col


def test_external_model_directory_gives_the_tables_of_the_same_model_scored_as_a_checkpoint(tiny_tokenizer, world_dir, tmp_path):
    model_dir = hf_llama_dir(tiny_tokenizer, tmp_path / "hf")
    spec = {"tasks": SYNTHETIC, "shots": [0, 1], "examples_per_task": 4, "fewshot_seed": 1234, "domain_docs": 3}
    examples = [str(world_dir / "tasks" / f"{t}.jsonl") for t in SYNTHETIC]
    (tmp_path / "out").mkdir()
    got = _evaluate(
        ["--checkpoint", str(model_dir), "--external-run", "ext", "--external-step", "7"],
        spec,
        world_dir,
        SYNTHETIC,
        examples,
        tmp_path / "out",
    )

    # The same weights through our own Llama (it reads transformers' LlamaForCausalLM directories) and tokenizer.
    ours = LlamaLM(load_model(model_dir), tokenizer_lib.load(model_dir))
    documents = {d: read_documents(world_dir / "domains" / f"{d}.jsonl", "valid", 3) for d in DOMAINS}
    tasks = _load_tasks([ROOT / "resources" / "tasks" / f"{t}.yaml" for t in SYNTHETIC], examples, SYNTHETIC)
    ref = evaluate_checkpoint(ours, {"run": "ext", "step": 7}, documents, tasks, Evaluation.from_dict(spec))
    for short, name in (("dl", "domain_losses"), ("ts", "task_scores"), ("es", "example_scores")):
        _assert_frames_close(got[short], pl.from_arrow(ref[name]), rel=1e-5)
    assert set(got["ts"]["run"]) == {"ext"} and set(got["ts"]["step"]) == {7}
    assert got["dl"]["span_corruption_loss"].is_finite().all()  # the project tokenizer has sentinels

    # Both LMs present the same tokenizer and window to the scorer.
    hf = load_lm(model_dir, external=True)
    assert isinstance(hf, HFLM) and (hf.start_id, hf.max_len) == (ours.start_id, ours.max_len) == (
        tokenizer_lib.eos_id(ours.tokenizer),
        64,
    )
    text = read_documents(world_dir / "domains" / "code.jsonl", "valid", 1)[0]
    assert hf.encode(text) == ours.encode(text) and hf.encode_batch([text, "a = 1"]) == ours.encode_batch([text, "a = 1"])
    assert hf.token_to_id("<extra_id_0>") == ours.token_to_id("<extra_id_0>") is not None and hf.token_to_id("<nope>") is None


def test_external_model_directory_errors_name_the_directory(tmp_path):
    with pytest.raises(ValueError, match=rf"{tmp_path}: no config.json"):
        load_lm(tmp_path, external=True)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama"}))
    with pytest.raises(ValueError, match=rf"{tmp_path}: no tokenizer AutoTokenizer can load"):
        load_lm(tmp_path, external=True)


def test_dataset_tasks_from_local_jsonl_and_parquet_files(tiny_tokenizer, world_dir, tmp_path):
    """arc_easy (train JSONL, test Parquet) and hellaswag (JSONL) -> task-data -> evaluate, with 1-shot prompts."""
    data = tmp_path / "data"
    data.mkdir()
    pl.DataFrame(ARC_ROWS["test.jsonl"]).write_parquet(data / "arc_test.parquet")
    for name, rows in {"arc_train.jsonl": ARC_ROWS["train.jsonl"], **HELLASWAG_ROWS}.items():
        (data / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
    task_data = {
        "arc_easy": {"train": str(data / "arc_train.jsonl"), "test": str(data / "arc_test.parquet")},
        "hellaswag": {"train": str(data / "hellaswag_train.jsonl"), "validation": str(data / "hellaswag_val.jsonl")},
    }
    examples = []
    for task, files in task_data.items():
        out = tmp_path / "tasks" / f"{task}.jsonl"
        main(
            [
                "task-data",
                "--spec",
                json.dumps({"files": files}),
                "--task-spec",
                str(ROOT / "resources" / "tasks" / f"{task}.yaml"),
                "--out",
                str(out),
            ]
        )
        examples.append(str(out))
    rows = [json.loads(line) for line in open(tmp_path / "tasks" / "arc_easy.jsonl")]
    assert [(x["split"], x["gold"]) for x in rows] == [("train", 0), ("test", 1), ("test", 1)]

    model_dir = hf_llama_dir(tiny_tokenizer, tmp_path / "hf")
    spec = {"tasks": list(task_data), "shots": [0, 1], "examples_per_task": 10, "fewshot_seed": 1234, "domain_docs": 2}
    (tmp_path / "out").mkdir()
    got = _evaluate(
        ["--checkpoint", str(model_dir), "--external-run", "ext"], spec, world_dir, list(task_data), examples, tmp_path / "out"
    )
    acc = got["ts"].filter(pl.col("metric") == "acc")
    assert sorted(set(acc["task"])) == ["arc_easy", "hellaswag"]
    assert dict(acc.group_by("task").agg(pl.col("n").first()).iter_rows()) == {"arc_easy": 2, "hellaswag": 2}
    assert got["es"].height == (2 + 2) * 2  # examples x shots (one prompt each)


def _config(edit):
    config = copy.deepcopy(DEFAULT)
    edit(config)
    return config


def test_config_checks_external_models_and_task_data(tmp_path):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    (tmp_path / "test.parquet").write_bytes(b"")
    ok = _config(lambda c: c.update(external=[{"name": "pythia", "path": str(tmp_path / "model")}]))
    validate(ok)
    cases = [
        (
            lambda c: c.update(external=[{"name": "x", "path": str(tmp_path / "nope")}]),
            r"external\[0\]\.path: .*nope' is not a directory",
        ),
        (lambda c: c.update(external=[{"name": "x", "path": str(tmp_path)}]), r"external\[0\]\.path: .* has no config\.json"),
        (
            lambda c: c.update(external=[{"name": c["runs"][0]["name"], "path": str(tmp_path / "model")}]),
            r"external\[0\]\.name: .* already",
        ),
        (lambda c: c.update(external=[{"path": str(tmp_path / "model")}]), r"external\[0\]: 'name' is a required property"),
        (lambda c: c["evaluation"]["tasks"].append("arc_easy"), r"evaluation\.task_data\.arc_easy: missing"),
        (
            lambda c: c["evaluation"].update(
                tasks=["arc_easy"], task_data={"arc_easy": {"test": str(tmp_path / "test.parquet")}}
            ),
            r"evaluation\.task_data\.arc_easy\.train: missing",
        ),  # shots [0, 2] draw demonstrations from train
        (
            lambda c: c["evaluation"].update(
                tasks=["arc_easy"], task_data={"arc_easy": {"test": str(tmp_path / "t.csv"), "train": "x.jsonl"}}
            ),
            r"evaluation\.task_data\.arc_easy\.test: .*t\.csv'; expected a file ending in one of",
        ),
    ]
    for edit, pattern in cases:
        with pytest.raises(ConfigError, match=pattern):
            validate(_config(edit))


def test_workflow_runs_rule_evaluate_on_an_external_model_with_a_dataset_task(tiny_tokenizer, tmp_path):
    """The smoke config plus `external` and arc_easy from local files: rules task_data and evaluate, for real."""
    import os
    import subprocess
    import sys

    from test_workflow import SMOKE, copy_workflow

    copy_workflow(tmp_path)
    hf_llama_dir(tiny_tokenizer, tmp_path / "hf")
    for name in ("train", "test"):
        (tmp_path / f"arc_{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ARC_ROWS[f"{name}.jsonl"]))
    config = yaml.safe_load(SMOKE.read_text())
    config["external"] = [{"name": "ext", "path": "hf"}]
    config["evaluation"]["tasks"].append("arc_easy")
    config["evaluation"]["task_data"] = {"arc_easy": {"train": "arc_train.jsonl", "test": "arc_test.jsonl"}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    target = "results/evals/ext/step0/task_scores.parquet"
    bin_dir = Path(sys.executable).parent
    plan = subprocess.run(
        [f"{bin_dir}/snakemake", "--cores", "2", "--configfile", "config.yaml", "--dry-run"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert plan.returncode == 0, plan.stderr[-3000:]
    assert "wildcards: run=ext, step=0" in plan.stdout and "rule task_data:" in plan.stdout
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}  # the rule's shell calls this environment's lmforecast
    run = subprocess.run(
        [f"{bin_dir}/snakemake", target, "--cores", "2", "--configfile", "config.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    scores = pl.read_parquet(tmp_path / target)
    assert set(scores["run"]) == {"ext"} and "arc_easy" in set(scores["task"]) and "fact_qa" in set(scores["task"])
