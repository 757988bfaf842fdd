"""Tasks as data: a YAML file per task (lm-evaluation-harness style) plus its examples.

A task YAML names its prompt templates, splits and delimiters; examples (JSONL, written
by the `world` rule) carry `fields` for the templates, `choices` and the `gold` index.
A multiple-choice request is a context (k demonstrations, then the prompt) and one
continuation per choice, `target_delimiter + choice`, as lm-eval builds them.
"""

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml


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


def build_requests(task: Task, examples, prompts, shots, limit=None, seed=1234) -> list[Request]:
    """Requests for every eval example x prompt x number of shots.

    Demonstrations come from the few-shot split and depend only on (seed, example index,
    shots), so every checkpoint and every prompt sees the same demonstrations.
    """
    pool = [x for x in examples if x["split"] == task.fewshot_split]
    targets = [x for x in examples if x["split"] == task.eval_split][:limit]
    requests = []
    for i, x in enumerate(targets):
        for k in shots:
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
