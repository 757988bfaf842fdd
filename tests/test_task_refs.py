"""Tasks by reference: the user's YAML outside resources/, an lm-evaluation-harness package task by name
(its own YAML read from the package, data from local files), and the references the config refuses."""

import copy
import json
import os
from pathlib import Path

import polars as pl
import pytest
import torch
import yaml
from test_external import DEFAULT, DOMAINS, world_dir  # noqa: F401 (world_dir: a fixture)
from test_tasks import ARC_ROWS
from tiny import hf_llama_dir

from lmforecast.cli import main
from lmforecast.config import ConfigError, validate
from lmforecast.measure.evaluate import score_requests
from lmforecast.measure.lm import HFLM
from lmforecast.measure.tasks import LM_EVAL_PROMPT, build_requests, lm_eval_examples, load_task, resolve_task

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no hub access here: everything below is local
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
lm_eval = pytest.importorskip("lm_eval", reason="lm-eval is not installed (pinned in envs/requirements.txt)")

# A task of the user's own, in our YAML format, over rows of the user's own dataset.
MY_MC = {
    "task": "my_mc",
    "domain": None,
    "dataset": {"id": "qid", "fields": ["q"], "choices": "options", "gold": "label"},
    "output_type": "multiple_choice",
    "fewshot_split": "train",
    "eval_split": "test",
    "prompts": {"plain": "{q} =", "question": "Q: {q}\nA:"},
    "metrics": ["acc"],
}
MY_ROWS = {
    "train": [{"qid": f"t{i}", "q": f"{i} + 1", "options": [str(i + 1), str(i + 2)], "label": 0} for i in range(4)],
    "test": [{"qid": f"e{i}", "q": f"{i} + 2", "options": [str(i + 1), str(i + 2), str(i + 3)], "label": 1} for i in range(5)],
}
# MMLU rows (cais/mmlu's format: question, subject, choices, answer index) for lm-eval's mmlu_anatomy,
# whose prompt has a description and fixed choices A-D.
MMLU_ROWS = {
    split: [
        {
            "question": f"Which bone is number {i} in the {split} list?",
            "subject": "anatomy",
            "choices": ["femur", "tibia", "ulna", "radius"],
            "answer": i % 4,
        }
        for i in range(n)
    ]
    for split, n in (("dev", 2), ("test", 3))
}
# WinoGrande rows (allenai/winogrande's format: a sentence with a blank, two options, answer "1" or "2") for
# lm-eval's winogrande, a multiple-input task: each option fills the blank of its own context.
WINOGRANDE_ROWS = {
    "train": [
        {
            "sentence": "The cup fell off the shelf because _ was tipped.",
            "option1": "the cup",
            "option2": "the shelf",
            "answer": "2",
        }
    ],
    "validation": [
        {"sentence": f"{a} gave {b} a book since _ had read it {i} times.", "option1": a, "option2": b, "answer": str(1 + i % 2)}
        for i, (a, b) in enumerate([("Ann", "Bob"), ("Carl", "Dora"), ("Eve", "Finn"), ("Gus", "Hana")])
    ],
}


def _evaluate(model_dir, spec, world_dir, task_specs, examples, out):  # noqa: F811
    """`lmforecast evaluate` of an external model directory; the three tables it writes."""
    main(
        ["evaluate", "--spec", json.dumps(spec), "--checkpoint", str(model_dir), "--external-run", "ext"]
        + ["--domains", *[str(world_dir / "domains" / f"{d}.jsonl") for d in DOMAINS]]
        + ["--task-specs", *task_specs, "--task-examples", *examples]
        + [f"--{name}={out / name}.parquet" for name in ("domain-losses", "task-scores", "example-scores")]
    )
    return {name: pl.read_parquet(out / f"{name}.parquet") for name in ("domain-losses", "task-scores", "example-scores")}


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_a_user_task_yaml_outside_resources_is_evaluated_end_to_end(tiny_tokenizer, world_dir, tmp_path):  # noqa: F811
    yaml_path = tmp_path / "mine" / "my_mc.yaml"
    yaml_path.parent.mkdir()
    yaml_path.write_text(yaml.safe_dump(MY_MC))
    files = {split: _jsonl(tmp_path / f"my_{split}.jsonl", rows) for split, rows in MY_ROWS.items()}

    # The config takes it by path, with its data from files; its name is the YAML's `task`.
    config = copy.deepcopy(DEFAULT)
    config["evaluation"]["tasks"].append(str(yaml_path))
    config["evaluation"]["task_data"] = {"my_mc": files}
    config["sft"]["tasks"].append(str(yaml_path))
    validate(config)
    ref = resolve_task(str(yaml_path))
    assert (ref.name, ref.source, ref.world) == ("my_mc", "file", False)
    assert load_task(yaml_path).metrics == ("acc",)

    out = tmp_path / "tasks" / "my_mc.jsonl"
    main(["task-data", "--spec", json.dumps({"files": files}), "--task-spec", str(yaml_path), "--out", str(out)])
    model_dir = hf_llama_dir(tiny_tokenizer, tmp_path / "hf")
    spec = {"tasks": [str(yaml_path)], "shots": [0, 1], "examples_per_task": 10, "fewshot_seed": 1234, "domain_docs": 2}
    (tmp_path / "out").mkdir()
    got = _evaluate(model_dir, spec, world_dir, [str(yaml_path)], [str(out)], tmp_path / "out")
    acc = got["task-scores"].filter(pl.col("metric") == "acc")
    assert set(acc["task"]) == {"my_mc"} and set(acc["prompt"]) == {"plain", "question"}
    assert set(acc["n"]) == {5} and acc["chance"].to_list() == pytest.approx([1 / 3] * 4)
    assert got["example-scores"].height == 5 * 2 * 2  # examples x prompts x shots


@pytest.fixture(scope="module")
def lm_eval_run(tiny_tokenizer, tmp_path_factory):
    """lm-eval's own run (HF backend, float64) of its arc_challenge, mmlu_anatomy and winogrande on local rows, and our
    examples; winogrande also 1-shot (as winogrande_1shot), its one training row the demonstration on both sides."""
    root = tmp_path_factory.mktemp("lmeval_refs")
    model_dir = hf_llama_dir(tiny_tokenizer, root / "model")
    with torch.no_grad():  # peaked predictions, so that acc is not a coin toss
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(model_dir)
        torch.manual_seed(1)
        for p in model.parameters():
            if p.dim() == 2:
                p.normal_(0.0, 0.2)
        model.save_pretrained(model_dir)
    files = {
        "arc_challenge": {
            "train": _jsonl(root / "arc_train.jsonl", ARC_ROWS["train.jsonl"]),
            "test": _jsonl(root / "arc_test.jsonl", ARC_ROWS["test.jsonl"]),
        },
        "mmlu_anatomy": {split: _jsonl(root / f"mmlu_{split}.jsonl", rows) for split, rows in MMLU_ROWS.items()},
        "winogrande": {split: _jsonl(root / f"wino_{split}.jsonl", rows) for split, rows in WINOGRANDE_ROWS.items()},
    }
    runs = {name: (name, 0) for name in files} | {"winogrande_1shot": ("winogrande", 1)}
    tasks_dir = root / "tasks"
    tasks_dir.mkdir()
    ours = {}
    for run, (name, shots) in runs.items():
        data = files[name]
        ref = resolve_task(name)  # by name: the package's own YAML
        assert ref.source == "lm_eval" and ref.path.is_relative_to(Path(lm_eval.__file__).parent)
        ours[run] = (load_task(ref.path), lm_eval_examples(ref.path, data, cache_dir=root / "hf_cache"), shots)
        spec = {  # lm-eval's run: its own YAML, only the dataset swapped for the same files
            "include": str(ref.path),
            "task": f"ref_{run}",
            "dataset_path": "json",
            "dataset_name": None,
            "dataset_kwargs": {"data_files": data, "cache_dir": str(root / "hf_cache")},
            "num_fewshot": shots,
        } | ({} if "validation" in data else {"validation_split": None})
        if shots:  # lm-eval's demonstrations in order: the one training row, as ours (a pool of one)
            spec["fewshot_config"] = {"sampler": "first_n"}
        (tasks_dir / f"ref_{run}.yaml").write_text(json.dumps(spec))
    from lm_eval.tasks import TaskManager

    out = lm_eval.simple_evaluate(
        model="hf",
        model_args={"pretrained": str(model_dir), "dtype": "float64", "add_bos_token": True},
        tasks=[f"ref_{run}" for run in runs],
        device="cpu",
        batch_size=16,
        log_samples=True,
        bootstrap_iters=0,
        task_manager=TaskManager(include_path=str(tasks_dir), include_defaults=False),
    )
    lm = HFLM.load(model_dir)
    return ours, out, lm.with_model(lm.model.double())


@pytest.mark.parametrize("name", ["arc_challenge", "mmlu_anatomy", "winogrande", "winogrande_1shot"])
def test_an_lm_eval_package_task_by_name_scores_as_lm_eval_does(lm_eval_run, name):
    ours, out, lm = lm_eval_run
    task, examples, shots = ours[name]
    assert list(task.prompts) == [LM_EVAL_PROMPT] and task.metrics == tuple(
        m["metric"] for m in out["configs"][f"ref_{name}"]["metric_list"]
    )
    samples = sorted(out["samples"][f"ref_{name}"], key=lambda s: s["doc_id"])
    requests = build_requests(task, examples, [LM_EVAL_PROMPT], [shots])
    assert len(samples) == len(requests) > 0
    for s, req, m, ll in zip(samples, requests, score_requests(lm, requests), lm.loglikelihood([r.lm_request for r in requests])):
        assert [tuple(a) for a in s["arguments"]] == list(req.arguments)  # lm-eval's contexts and continuations
        assert [lp for lp, _, _ in ll] == pytest.approx([r[0] for r in s["filtered_resps"]], abs=1e-6)
        assert all(m[metric] == s[metric] for metric in task.metrics)
    if name.startswith("winogrande"):  # each option ends its own context; the rest of the sentence is the continuation
        row = WINOGRANDE_ROWS["validation"][0]
        assert requests[0].arguments[1][0].endswith("Ann gave Bob a book since Bob")
        assert requests[0].continuations == (" had read it 0 times.",) * 2 and requests[0].gold == int(row["answer"]) - 1
    if name == "winogrande_1shot":  # the demonstration: the training row's gold context and its continuation
        assert requests[0].context == "The cup fell off the shelf because the shelf was tipped.\n\n"
    if name == "mmlu_anatomy":  # the description is part of the context, once
        assert requests[0].context.startswith("The following are multiple choice questions (with answers) about anatomy.")


def test_bad_task_references_stop_the_config_naming_them(tmp_path):
    generative = tmp_path / "gen.yaml"
    generative.write_text(yaml.safe_dump({**MY_MC, "task": "gen", "output_type": "generate_until"}))
    f1 = tmp_path / "f1.yaml"
    f1.write_text(yaml.safe_dump({**MY_MC, "task": "f1_task", "metrics": ["acc", "f1"]}))
    lm_eval_gen = tmp_path / "lm_gen.yaml"
    lm_eval_gen.write_text(yaml.safe_dump({"task": "lm_gen", "doc_to_text": "{{q}}", "test_split": "test"}))
    no_choice = tmp_path / "no_choice.yaml"
    no_choice.write_text(
        yaml.safe_dump({"task": "nc", "doc_to_text": "{{q}}", "test_split": "test", "output_type": "multiple_choice"})
    )
    image = tmp_path / "image.yaml"
    image.write_text(yaml.safe_dump({**MY_MC, "task": "img", "doc_to_image": ["image"]}))
    cases = [
        ("arc_chalenge", r"evaluation\.tasks\[4\]: 'arc_chalenge': unknown task; .*close names: arc_challenge"),
        ("gsm8k", r"evaluation\.tasks\[4\]: task 'gsm8k' .*output_type 'generate_until' is not 'multiple_choice'"),
        (str(generative), r"evaluation\.tasks\[4\]: task 'gen' .*output_type 'generate_until' is not 'multiple_choice'"),
        (str(lm_eval_gen), r"evaluation\.tasks\[4\]: task 'lm_gen' .*output_type 'generate_until'"),  # lm-eval's default
        (str(f1), r"evaluation\.tasks\[4\]: task 'f1_task' .*metric\(s\) \['f1'\] are not measured; expected some of \['acc'"),
        ("cb", r"evaluation\.tasks\[4\]: task 'cb' .*metric\(s\) \['f1'\] are not measured"),  # lm-eval's metric_list
        ("truthfulqa_mc2", r"evaluation\.tasks\[4\]: task 'truthfulqa_mc2' .*its own process_results function"),
        (str(no_choice), r"evaluation\.tasks\[4\]: task 'nc' .*no doc_to_choice"),
        (str(image), r"evaluation\.tasks\[4\]: task 'img' .*multimodal \(doc_to_image\)"),
        (str(tmp_path / "nope.yaml"), r"evaluation\.tasks\[4\]: '.*nope\.yaml': no such task YAML file"),
        ("arc_challenge", r"evaluation\.task_data\.arc_challenge: missing; .* local files"),
    ]
    for ref, message in cases:
        config = copy.deepcopy(DEFAULT)
        config["evaluation"]["tasks"].append(ref)
        with pytest.raises(ConfigError, match=message):
            validate(config)
    # What only the rows show, from each file's first row through lm-eval's own task code, before any job:
    # lm-eval's multiple targets (doc_to_target gives a list), and rows without the fields the task reads.
    multi = tmp_path / "multi_t.yaml"
    multi.write_text(
        yaml.safe_dump(
            {"task": "multi_t", "output_type": "multiple_choice", "test_split": "test", "doc_to_text": "{{q}}"}
            | {"doc_to_choice": "{{options}}", "doc_to_target": "{{golds}}"}
        )
    )
    wino = {split: _jsonl(tmp_path / f"wino_{split}.jsonl", rows) for split, rows in WINOGRANDE_ROWS.items()}
    cases = [
        (
            str(multi),
            "multi_t",
            {"test": _jsonl(tmp_path / "multi.jsonl", [{"q": "1 + 1", "options": ["2", "3"], "golds": [0, 1]}])},
        ),
        (
            "winogrande",
            "winogrande",
            {**wino, "validation": _jsonl(tmp_path / "bad.jsonl", [{"sentence": "_ is", "option1": "a"}])},
        ),
    ]
    messages = [
        r"evaluation\.task_data\.multi_t: multi_t: .*multi\.jsonl: row 0: doc_to_target gives a list \(lm-eval's multiple targets\)",
        r"evaluation\.task_data\.winogrande: row 0 of .*bad\.jsonl.*: KeyError: 'answer'; expected rows in the format",
    ]
    for (ref, name, files), message in zip(cases, messages):
        config = copy.deepcopy(DEFAULT)
        config["evaluation"]["tasks"].append(ref)
        config["evaluation"]["task_data"] = {name: files}
        with pytest.raises(ConfigError, match=message):
            validate(config)
    config["evaluation"]["task_data"] = {"winogrande": wino}  # the same rows scored in test_an_lm_eval_package_task...
    validate(config)
    config = copy.deepcopy(DEFAULT)  # on a machine that reaches the hub: the dataset lm-eval's YAML names
    config["evaluation"].update(tasks=[*config["evaluation"]["tasks"], "sciq"], task_data={"sciq": "hub"})
    validate(config)
    config = copy.deepcopy(DEFAULT)
    config["sft"]["tasks"].append("sciq")
    with pytest.raises(ConfigError, match=r"sft\.tasks: \['sciq'\] are not in evaluation\.tasks"):
        validate(config)
