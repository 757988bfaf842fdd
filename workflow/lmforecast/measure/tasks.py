"""Tasks as data: a YAML file per task (lm-evaluation-harness style) plus its examples.

A task YAML names its prompt templates, splits and delimiters; examples (JSONL, written
by the `world` rule) carry `fields` for the templates, `choices` and the `gold` index.
A multiple-choice request is a context (k demonstrations, then the prompt) and one
continuation per choice, `target_delimiter + choice`, as lm-eval builds them.
"""

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

# A dataset task's local files: the `datasets` builder per file suffix.
DATA_FORMATS = {".jsonl": "json", ".json": "json", ".parquet": "parquet"}


@dataclass(frozen=True)
class Task:
    name: str
    domain: str
    prompts: dict  # prompt name -> template
    fewshot_split: str
    eval_split: str
    target_delimiter: str
    fewshot_delimiter: str


@dataclass(frozen=True)
class Request:
    """One (example, prompt, shots) multiple-choice question."""

    task: str
    prompt: str
    shots: int
    example: str
    context: str
    choices: tuple
    gold: int
    target_delimiter: str = " "

    @property
    def continuations(self):
        return tuple(self.target_delimiter + c for c in self.choices)


def load_task(path) -> Task:
    spec = yaml.safe_load(Path(path).read_text())
    required = ("task", "domain", "prompts", "fewshot_split", "eval_split")
    missing = [k for k in required if k not in spec]
    if missing:
        raise ValueError(f"{path}: task definition lacks {', '.join(missing)}")
    return Task(
        name=spec["task"],
        domain=spec["domain"],
        prompts=dict(spec["prompts"]),
        fewshot_split=spec["fewshot_split"],
        eval_split=spec["eval_split"],
        target_delimiter=spec.get("target_delimiter", " "),
        fewshot_delimiter=spec.get("fewshot_delimiter", "\n\n"),
    )


def read_examples(path) -> list[dict]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def write_examples(examples, path):
    from lmforecast.io import atomic_path

    with atomic_path(path) as tmp, open(tmp, "w") as f:
        for x in examples:
            f.write(json.dumps(x, sort_keys=True) + "\n")


def render(task: Task, prompt: str, example: dict) -> str:
    return task.prompts[prompt].format(**example["fields"])


def answer(task: Task, example: dict) -> str:
    return task.target_delimiter + example["choices"][example["gold"]]


def build_requests(task: Task, examples, prompts, shots, limit=None, seed=1234, fewshot_limit=None) -> list[Request]:
    """Requests for every eval example x prompt x number of shots.

    The first `limit` eval examples, and of them only the first `fewshot_limit` with k > 0
    shots. Demonstrations come from the few-shot split and depend only on (seed, example
    index, shots), so every checkpoint and every prompt sees the same demonstrations.
    """
    pool = [x for x in examples if x["split"] == task.fewshot_split]
    targets = [x for x in examples if x["split"] == task.eval_split][:limit]
    requests = []
    for i, x in enumerate(targets):
        for k in shots:
            if k and fewshot_limit is not None and i >= fewshot_limit:
                continue
            demo_idx = np.random.default_rng([seed, i, k]).choice(len(pool), size=k, replace=False) if k else []
            demos = [pool[j] for j in demo_idx]
            for p in prompts:
                parts = [render(task, p, d) + answer(task, d) for d in demos] + [render(task, p, x)]
                requests.append(
                    Request(
                        task=task.name,
                        prompt=p,
                        shots=k,
                        example=x["id"],
                        context=task.fewshot_delimiter.join(parts),
                        choices=tuple(x["choices"]),
                        gold=x["gold"],
                        target_delimiter=task.target_delimiter,
                    )
                )
    return requests


# Real benchmarks (resources/tasks/arc_easy.yaml, hellaswag.yaml): rows of a `datasets`
# dataset, turned into the example dicts the synthetic tasks use.


def _hellaswag_text(text):
    """lm-eval's hellaswag/utils.py preprocess: strip WikiHow's bracketed artifacts."""
    text = text.strip()
    text = text.replace(" [title]", ". ")
    text = re.sub("\\[.*?\\]", "", text)
    return text.replace("  ", " ")


def _hellaswag_row(row):
    """lm-eval's hellaswag process_docs: the query (activity label + context) and cleaned endings."""
    ctx = row["ctx_a"] + " " + row["ctx_b"].capitalize()
    return {
        **row,
        "query": _hellaswag_text(row["activity_label"] + ": " + ctx),
        "endings": [_hellaswag_text(e) for e in row["endings"]],
    }


# A task YAML's dataset.process names one of these (lm-eval's `process_docs: !function`).
PROCESSORS = {"hellaswag": _hellaswag_row}


def _get(row, dotted):
    for key in dotted.split("."):
        row = row[key]
    return row


def _gold(row, spec):
    """gold: a field holding the index (int or "2"), or {index_of: field, in: list field} (ARC's answerKey)."""
    if isinstance(spec, str):
        return int(_get(row, spec))
    return list(_get(row, spec["in"])).index(_get(row, spec["index_of"]))


def load_dataset_examples(task_yaml, data_dir=None, splits=None, cache_dir=None, files=None) -> list[dict]:
    """Examples ({id, split, fields, choices, gold}) of a task whose YAML describes a `datasets` dataset.

    data_dir: a local directory holding dataset.local_files (JSONL in the dataset's own
    format); without it, dataset.path / dataset.name are loaded with datasets.load_dataset
    (a hub id, read from the local HF cache when offline). splits: the task's few-shot and
    evaluation splits by default; rows without a gold answer (e.g. a hidden test split)
    are an error, not skipped. cache_dir: the datasets cache (default ~/.cache/huggingface).
    files: {split: path} of local JSONL or Parquet files instead (the workflow's evaluation.task_data);
    the splits are then those given.
    """
    import datasets

    spec = yaml.safe_load(Path(task_yaml).read_text())
    ds = spec["dataset"]
    splits = splits or (list(files) if files else list(dict.fromkeys([spec["fewshot_split"], spec["eval_split"]])))
    if files is not None:
        loaded = {}
        for split in splits:
            fmt = DATA_FORMATS.get(Path(files[split]).suffix)
            if fmt is None:
                raise ValueError(f"{files[split]}: expected a file ending in one of {sorted(DATA_FORMATS)}")
            loaded[split] = datasets.load_dataset(fmt, data_files={split: str(files[split])}, cache_dir=cache_dir)[split]
    elif data_dir is not None:
        files = {s: str(Path(data_dir) / ds["local_files"][s]) for s in splits}
        loaded = datasets.load_dataset(ds.get("local_format", "json"), data_files=files, cache_dir=cache_dir)
    else:
        loaded = datasets.load_dataset(ds["path"], ds.get("name"), cache_dir=cache_dir)
    process = PROCESSORS[ds["process"]] if ds.get("process") else (lambda row: row)
    examples = []
    for split in splits:
        for i, row in enumerate(loaded[split]):
            try:
                row = process(row)
                ident = row[ds["id"]] if ds.get("id") else i
                examples.append(
                    {
                        "id": f"{spec['task']}-{split}-{ident}",
                        "split": split,
                        "fields": {f: row[f] for f in ds["fields"]},
                        "choices": [str(c) for c in _get(row, ds["choices"])],
                        "gold": _gold(row, ds["gold"]),
                    }
                )
            except (KeyError, ValueError, TypeError) as e:
                source = files[split] if files else split
                raise ValueError(
                    f"{spec['task']}: {source}: row {i} lacks or has a bad value for a field of "
                    f"{Path(task_yaml).name}'s dataset section ({type(e).__name__}: {e})"
                ) from e
    return examples
