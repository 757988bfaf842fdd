"""lmforecast's multiple-choice scorer agrees with lm-evaluation-harness (HF backend) on the same questions.

One tiny checkpoint (our Llama + our tokenizer, loadable by AutoModelForCausalLM /
AutoTokenizer) is scored by lm-eval's `simple_evaluate` (CPU, log_samples) and by
lmforecast, both in float64 (lm-eval: dtype=float64; ours: .double()), so that the
comparison is not blurred by float32 rounding (in float32 the sums differ by up to a few
1e-6; see bench/results/evaluate.json). lm-eval prepends a BOS token to the context only
if the tokenizer adds one, so it runs with add_bos_token=True: our BOS is EOS, which our
scorer prepends. Everything is local and offline: datasets are JSONL files written here.

Tasks: fact_qa zero-shot (our own request builder must produce lm-eval's exact contexts)
and 3-shot (lm-eval's demonstrations; contexts longer than the 64-token window, so
left truncation per choice); a context with a trailing space and an empty target
delimiter (lm-eval moves the space into the continuation); a split inside a word (the
joint tokenization merges across the boundary); and lm-eval's own arc_easy and hellaswag
configurations on rows in the real formats, against our YAML + load_dataset_examples.
"""

import json
import os
import re
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no hub access here: everything below is local
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
lm_eval = pytest.importorskip("lm_eval", reason="lm-eval is not installed (pinned in envs/requirements.txt)")

import torch  # noqa: E402
from test_tasks import ARC_ROWS, HELLASWAG_ROWS, write_rows  # noqa: E402

from lmforecast.data import tokenizer as tokenizer_lib  # noqa: E402
from lmforecast.data.world import task_examples  # noqa: E402
from lmforecast.measure.evaluate import score_requests  # noqa: E402
from lmforecast.measure.lm import LlamaLM  # noqa: E402
from lmforecast.measure.scoring import encode_choices  # noqa: E402
from lmforecast.measure.tasks import Request, Task, build_requests, load_dataset_examples, load_task  # noqa: E402
from lmforecast.train.model import Llama, ModelConfig, load_model, save_model  # noqa: E402

MAX_LEN = 64
TOL = 1e-6
LMEVAL_TASKS = Path(lm_eval.__file__).parent / "tasks"


def _jinja(template):
    return re.sub(r"\{(\w+)\}", r"{{\1}}", template)  # our str.format templates as lm-eval's Jinja


def _write_jsonl(path, examples):
    """Synthetic examples as dataset rows: the template fields at top level, choices, gold, id."""
    path.write_text(
        "".join(json.dumps({"id": x["id"], **x["fields"], "choices": x["choices"], "gold": x["gold"]}) + "\n" for x in examples)
    )


def _synthetic_task(directory, name, examples, template, target_delimiter, shots, choices=None):
    """An lm-eval task over the world's examples (choices optionally rewritten), and our Task for it."""
    if choices:
        examples = [{**x, "choices": [choices(c) for c in x["choices"]]} for x in examples]
    files = {}
    for split in ("sft", "eval"):
        files[split] = str(directory / f"{name}_{split}.jsonl")
        _write_jsonl(Path(files[split]), [x for x in examples if x["split"] == split])
    spec = {
        "task": name,
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": files, "cache_dir": str(directory / "hf_cache")},
        "test_split": "eval",
        "fewshot_split": "sft",
        "num_fewshot": shots,
        "output_type": "multiple_choice",
        "doc_to_text": _jinja(template),
        "doc_to_choice": "choices",
        "doc_to_target": "gold",
        "target_delimiter": target_delimiter,
        "fewshot_delimiter": "\n\n",
        "metric_list": [{"metric": m, "aggregation": "mean", "higher_is_better": True} for m in ("acc", "acc_norm")],
    }
    (directory / f"{name}.yaml").write_text(json.dumps(spec))  # JSON is YAML
    task = Task(
        name=name,
        domain=None,
        prompts={"p": template},
        fewshot_split="sft",
        eval_split="eval",
        target_delimiter=target_delimiter,
        fewshot_delimiter="\n\n",
    )
    return task, examples


def _real_task(directory, name, lmeval_yaml, data_files):
    """lm-eval's own task configuration, only its dataset swapped for local JSONL files."""
    spec = {
        "include": str(lmeval_yaml),
        "task": name,
        "dataset_path": "json",
        "dataset_name": None,
        "dataset_kwargs": {"data_files": data_files, "cache_dir": str(directory / "hf_cache")},
        "validation_split": "validation" if "validation" in data_files else None,
        "num_fewshot": 0,
    }
    (directory / f"{name}.yaml").write_text(json.dumps(spec))


@pytest.fixture(scope="module")
def agreement(tiny_world, tiny_tokenizer, tmp_path_factory):
    root = tmp_path_factory.mktemp("lmeval")
    model_dir, tasks_dir = root / "model", root / "tasks"
    model_dir.mkdir()
    tasks_dir.mkdir()
    tok = tokenizer_lib.load(tiny_tokenizer)
    torch.manual_seed(0)
    model = Llama(
        ModelConfig(
            vocab_size=tok.get_vocab_size(),
            d_model=32,
            n_layers=2,
            n_heads=2,
            seq_len=MAX_LEN,
            eos_token_id=tokenizer_lib.eos_id(tok),
        )
    )
    with torch.no_grad():  # larger weights than the init's: peaked predictions, so that acc is not a coin toss
        for p in model.parameters():
            if p.dim() == 2:
                p.normal_(0.0, 0.2)
    save_model(model, model_dir)
    tokenizer_lib.save_hf(tok, model_dir, model_max_length=MAX_LEN)

    fact_qa, sentiment = task_examples(tiny_world, "fact_qa"), task_examples(tiny_world, "sentiment")
    fact_template = load_task("resources/tasks/fact_qa.yaml").prompts
    ours = {  # lm-eval task name -> (our Task, examples, shots)
        "lmf_fact_qa_0shot": (*_synthetic_task(tasks_dir, "lmf_fact_qa_0shot", fact_qa, fact_template["question"], " ", 0), 0),
        "lmf_fact_qa_3shot": (*_synthetic_task(tasks_dir, "lmf_fact_qa_3shot", fact_qa, fact_template["statement"], " ", 3), 3),
        "lmf_trailing_space": (
            *_synthetic_task(tasks_dir, "lmf_trailing_space", sentiment, "{review} Overall, it was ", "", 0),
            0,
        ),
        "lmf_split_word": (
            *_synthetic_task(
                tasks_dir, "lmf_split_word", sentiment, "{review} Overall, it wa", "", 0, choices=lambda c: "s " + c
            ),
            0,
        ),
    }
    arc_dir, hs_dir = write_rows(root / "arc", ARC_ROWS), write_rows(root / "hellaswag", HELLASWAG_ROWS)
    _real_task(
        tasks_dir,
        "lmf_arc_easy",
        LMEVAL_TASKS / "arc/arc_easy.yaml",
        {"train": str(arc_dir / "train.jsonl"), "test": str(arc_dir / "test.jsonl")},
    )
    _real_task(
        tasks_dir,
        "lmf_hellaswag",
        LMEVAL_TASKS / "hellaswag/hellaswag.yaml",
        {"train": str(hs_dir / "hellaswag_train.jsonl"), "validation": str(hs_dir / "hellaswag_val.jsonl")},
    )
    for name, yaml_path, data_dir in (
        ("lmf_arc_easy", "resources/tasks/arc_easy.yaml", arc_dir),
        ("lmf_hellaswag", "resources/tasks/hellaswag.yaml", hs_dir),
    ):
        ours[name] = (load_task(yaml_path), load_dataset_examples(yaml_path, data_dir=data_dir, cache_dir=root / "hf_cache"), 0)

    from lm_eval.tasks import TaskManager

    out = lm_eval.simple_evaluate(
        model="hf",
        model_args={"pretrained": str(model_dir), "dtype": "float64", "add_bos_token": True},
        tasks=list(ours),
        device="cpu",
        batch_size=16,
        log_samples=True,
        bootstrap_iters=0,
        task_manager=TaskManager(include_path=str(tasks_dir), include_defaults=False),
    )
    return ours, out, LlamaLM(load_model(model_dir).double(), tokenizer_lib.load(model_dir))


def _our_requests(task, examples, shots, samples):
    """Our requests for lm-eval's documents: built by us at 0 shots, with lm-eval's contexts (its demonstrations) at k."""
    if shots == 0:
        by_id = {r.example: r for r in build_requests(task, examples, list(task.prompts), [0])}
        ids = [x["id"] for x in examples if x["split"] == task.eval_split]
        return [by_id[ids[s["doc_id"]]] for s in samples]
    return [
        Request(
            task=task.name,
            prompt="p",
            shots=shots,
            example=s["doc"]["id"],
            context=s["arguments"][0][0],
            choices=tuple(s["doc"]["choices"]),
            gold=s["doc"]["gold"],
            target_delimiter=task.target_delimiter,
        )
        for s in samples
    ]


@pytest.mark.parametrize(
    "name", ["lmf_fact_qa_0shot", "lmf_fact_qa_3shot", "lmf_trailing_space", "lmf_split_word", "lmf_arc_easy", "lmf_hellaswag"]
)
def test_loglikelihoods_acc_and_acc_norm_agree_with_lm_eval(agreement, name):
    ours, out, lm = agreement
    assert lm.max_len == MAX_LEN
    task, examples, shots = ours[name]
    samples = sorted(out["samples"][name], key=lambda s: s["doc_id"])
    requests = _our_requests(task, examples, shots, samples)
    assert len(samples) == len(requests) > 0

    groups = [encode_choices(lm, r.context, r.continuations) for r in requests]
    if name == "lmf_fact_qa_3shot":  # the case this task is here for: contexts beyond the window
        assert all(max(len(seq) for seq, _ in g) > MAX_LEN + 1 for g in groups)
    if name == "lmf_split_word":  # and here, a boundary that the joint tokenization merges
        ctx = lm.encode(requests[0].context)
        assert lm.encode(requests[0].context + requests[0].continuations[0])[: len(ctx)] != ctx

    lls = lm.loglikelihood([(r.context, r.continuations) for r in requests])
    metrics = score_requests(lm, requests)
    worst = 0.0
    for s, req, ll, m in zip(samples, requests, lls, metrics):
        assert [tuple(a) for a in s["arguments"]] == [(req.context, c) for c in req.continuations]
        lmeval_ll = [resp[0] for resp in s["filtered_resps"]]
        worst = max(worst, max(abs(a - b) for (a, _, _), b in zip(ll, lmeval_ll)))
        assert (m["acc"], m["acc_norm"]) == (s["acc"], s["acc_norm"])
        assert m["logprob_correct"] == pytest.approx(lmeval_ll[req.gold], abs=TOL)
    assert worst <= TOL, f"max |log-likelihood difference| {worst:.3g}"
    result = out["results"][name]
    assert result["acc,none"] == pytest.approx(sum(m["acc"] for m in metrics) / len(metrics))
    assert result["acc_norm,none"] == pytest.approx(sum(m["acc_norm"] for m in metrics) / len(metrics))
