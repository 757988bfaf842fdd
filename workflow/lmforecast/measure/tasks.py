"""Tasks as data: a YAML file per task (lm-evaluation-harness style) plus its examples.

A task YAML names its prompt templates, splits and delimiters; examples (JSONL, written
by the `world` rule) carry `fields` for the templates, `choices` and the `gold` index.
A multiple-choice request is a context (k demonstrations, then the prompt) and one
continuation per choice, `target_delimiter + choice`, as lm-eval builds them. lm-eval's
multiple-input tasks (winogrande) turn this around: an example's `choices` are the ends of
its contexts and its `target` is every choice's one continuation (Request.arguments).

Tasks by reference (`resolve_task`): the name of a task shipped in resources/tasks, a path to
the user's YAML, or the name of a task of the installed lm-evaluation-harness package. A YAML
in lm-eval's own format (doc_to_text, doc_to_choice, doc_to_target, `include`, `!function`) is
read with lm-eval's own loader and its examples rendered by lm-eval's own ConfigurableTask
(`lm_eval_examples`), so that its prompts are lm-eval's exactly; its one prompt is "default".
"""

import difflib
import functools
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

# A dataset task's local files: the `datasets` builder per file suffix.
DATA_FORMATS = {".jsonl": "json", ".json": "json", ".parquet": "parquet"}
TASKS_DIR = Path(__file__).resolve().parents[3] / "resources" / "tasks"  # the shipped tasks
MULTIPLE_CHOICE = "multiple_choice"
LM_EVAL_PROMPT = "default"  # the name of an lm-eval-format task's one prompt
# The per-example proxies that are averaged into task_scores (metric names as in lm-eval / DataDecide);
# task_scores also holds inv_ppl_correct, pooled over the answers' tokens (measure/evaluate.py).
TASK_METRICS = (
    "acc",
    "acc_norm",
    "correct_prob",
    "correct_prob_per_token",
    "correct_prob_per_char",
    "margin",
    "norm_correct_prob",
    "logprob_correct",
    "bits_per_byte",
)
SCORED_METRICS = (*TASK_METRICS, "inv_ppl_correct")
# lm-eval YAML keys of tasks that lmforecast cannot score as lm-eval does, and why (refused when the config is read)
UNSUPPORTED_KEYS = {
    "process_results": "its metrics come from its own process_results function, which lmforecast does not run",
    "doc_to_image": "it is multimodal (doc_to_image)",
    "doc_to_audio": "it is multimodal (doc_to_audio)",
    "use_prompt": "its prompt comes from promptsource (use_prompt)",
    "class": "it is a Python class, not a YAML task",
}


class TaskError(ValueError):
    """A task reference or definition that cannot be used; the message names it."""


@dataclass(frozen=True)
class Task:
    name: str
    domain: str
    prompts: dict  # prompt name -> template
    fewshot_split: str
    eval_split: str
    target_delimiter: str
    fewshot_delimiter: str
    output_type: str = MULTIPLE_CHOICE
    metrics: tuple = ("acc", "acc_norm")  # the YAML's metrics (lm-eval's metric_list)
    description: str = ""  # prepended once to each context (lm-eval's description), a template over the fields


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
    # lm-eval's multiple-input form (winogrande): each choice ends the context, and this is every choice's continuation
    target: str | None = None

    @property
    def continuations(self):
        if self.target is not None:
            return (self.target_delimiter + self.target,) * len(self.choices)
        return tuple(self.target_delimiter + c for c in self.choices)

    @property
    def arguments(self):
        """Per choice, the (context, continuation) it is scored as: lm-eval's request arguments."""
        if self.target is not None:
            return tuple((self.context + c, cont) for c, cont in zip(self.choices, self.continuations))
        return tuple((self.context, cont) for cont in self.continuations)

    @property
    def lm_request(self):
        """The request as LM.loglikelihood takes it: one context for all continuations, or one context each."""
        if self.target is not None:
            return tuple(ctx for ctx, _ in self.arguments), self.continuations
        return self.context, self.continuations


def read_task_yaml(path) -> dict:
    """A task YAML as a mapping: lm-eval's format through lm-eval's loader (includes merged, `!function` unresolved)."""
    path = Path(path)
    if not path.is_file():
        raise TaskError(f"{path}: task YAML not found")
    text = path.read_text()
    try:
        if "!function" in text or re.search(r"^[\"']?include[\"']?\s*:", text, re.M):
            from lm_eval.tasks._yaml_loader import load_yaml

            spec = load_yaml(path, resolve_func=False)
        else:
            spec = yaml.safe_load(text)
    except (yaml.YAMLError, OSError, ValueError) as e:  # OSError: an included file that is not there
        raise TaskError(f"{path}: not a readable task YAML ({type(e).__name__}: {e})") from e
    if not isinstance(spec, dict) or "task" not in spec:
        raise TaskError(f"{path}: expected a task YAML, a mapping with a 'task' name")
    return spec


def is_lm_eval_format(spec: dict) -> bool:
    """lm-eval's own YAML (doc_to_text ...), rather than ours (prompts: {name: template})."""
    return "prompts" not in spec and "doc_to_text" in spec


def _metrics(spec, path) -> tuple:
    """The task's metrics (ours: `metrics`, lm-eval's: `metric_list`): each one that task_scores holds."""
    metrics = (
        tuple(m["metric"] for m in spec["metric_list"])
        if "metric_list" in spec
        else tuple(spec.get("metrics", ("acc", "acc_norm")))
    )
    unknown = [m for m in metrics if m not in SCORED_METRICS]
    if unknown:
        raise TaskError(
            f"task {spec['task']!r} ({path}): metric(s) {unknown} are not measured; expected some of {list(SCORED_METRICS)}"
        )
    return metrics


def load_task(path) -> Task:
    """The task a YAML defines, in our format or in lm-eval's; a task that is not multiple choice is refused."""
    spec = read_task_yaml(path)
    for key, why in UNSUPPORTED_KEYS.items():
        if spec.get(key) is not None:
            raise TaskError(f"task {spec['task']!r} ({path}): {why}; lmforecast scores choices' log-likelihoods only")
    # lm-eval's default output type is generate_until; ours are multiple choice by construction
    output_type = spec.get("output_type", "generate_until" if is_lm_eval_format(spec) else MULTIPLE_CHOICE)
    if output_type != MULTIPLE_CHOICE:
        raise TaskError(
            f"task {spec['task']!r} ({path}): output_type {output_type!r} is not {MULTIPLE_CHOICE!r}; "
            "lmforecast scores multiple-choice tasks only (log-likelihoods of the choices)"
        )
    if is_lm_eval_format(spec):
        if spec.get("doc_to_choice") is None:
            raise TaskError(f"task {spec['task']!r} ({path}): no doc_to_choice; a multiple-choice task needs its choices")
        eval_split = spec.get("test_split") or spec.get("validation_split")
        fewshot_split = spec.get("fewshot_split") or spec.get("training_split") or spec.get("validation_split")
        if not eval_split:
            raise TaskError(f"task {spec['task']!r} ({path}): neither test_split nor validation_split to evaluate on")
        return Task(
            name=spec["task"],
            domain=None,
            prompts={LM_EVAL_PROMPT: "{text}"},
            fewshot_split=fewshot_split or eval_split,
            eval_split=eval_split,
            target_delimiter=spec.get("target_delimiter", " "),
            fewshot_delimiter=spec.get("fewshot_delimiter", "\n\n"),
            output_type=output_type,
            metrics=_metrics(spec, path),
            description="{description}" if spec.get("description") else "",
        )
    required = ("task", "domain", "prompts", "fewshot_split", "eval_split")
    missing = [k for k in required if k not in spec]
    if missing:
        raise TaskError(f"{path}: task definition lacks {', '.join(missing)}")
    return Task(
        name=spec["task"],
        domain=spec["domain"],
        prompts=dict(spec["prompts"]),
        fewshot_split=spec["fewshot_split"],
        eval_split=spec["eval_split"],
        target_delimiter=spec.get("target_delimiter", " "),
        fewshot_delimiter=spec.get("fewshot_delimiter", "\n\n"),
        output_type=output_type,
        metrics=_metrics(spec, path),
    )


@dataclass(frozen=True)
class TaskRef:
    """A task as the config names it, resolved: its name (the tables' `task`), its YAML and where its examples come from."""

    ref: str  # as the config gives it
    name: str
    path: Path  # its YAML
    source: str  # shipped | file | lm_eval
    world: bool  # examples from the world rule (a synthetic task), else from its dataset's files (rule task_data)


@functools.cache
def lm_eval_task_index() -> dict:
    """Task name -> YAML path of every task of the installed lm-evaluation-harness package ({} without it).

    A scan of the YAML files for their `task:` line, not lm-eval's TaskManager: that one parses
    all ~15,000 files (16 s here), which the config check runs on every Snakefile parse.
    """
    try:
        import lm_eval
    except ImportError:
        return {}
    rx = re.compile(r"^[\"']?task[\"']?\s*:\s*[\"']?([\w.\-]+)", re.M)
    index = {}
    for path in sorted((Path(lm_eval.__file__).parent / "tasks").rglob("*.yaml")):
        for name in rx.findall(path.read_text(errors="ignore")):
            index.setdefault(name, path)
    return index


def shipped_tasks() -> list[str]:
    return sorted(p.stem for p in TASKS_DIR.glob("*.yaml"))


@functools.cache
def resolve_task(ref: str) -> TaskRef:
    """A task reference: a shipped task's name, a path to a YAML (ours or lm-eval's format), or an lm-eval task's name.

    Raises TaskError naming the reference (with the closest known names for an unknown one), a YAML
    that is not multiple choice, or one that lacks what a task needs.
    """
    if ref.endswith((".yaml", ".yml")) or "/" in ref:
        path, source = Path(ref), "file"
        if not path.is_file():
            raise TaskError(f"{ref!r}: no such task YAML file")
    elif (TASKS_DIR / f"{ref}.yaml").is_file():
        path, source = TASKS_DIR / f"{ref}.yaml", "shipped"
    elif ref in lm_eval_task_index():
        path, source = lm_eval_task_index()[ref], "lm_eval"
    else:
        known = list(dict.fromkeys(shipped_tasks() + list(lm_eval_task_index())))
        close = difflib.get_close_matches(ref, known, n=5, cutoff=0.6)
        raise TaskError(
            f"{ref!r}: unknown task; expected a task of resources/tasks ({', '.join(shipped_tasks())}), "
            "a path to a task YAML, or an lm-evaluation-harness task name"
            + (f"; close names: {', '.join(close)}" if close else "")
        )
    spec = read_task_yaml(path)
    task = load_task(path)
    if source == "lm_eval" and task.name != ref:  # an index line of another task's file (e.g. a group)
        raise TaskError(f"{ref!r}: lm-eval's {path} defines task {task.name!r}, not {ref!r}")
    dataset = spec.get("dataset")
    return TaskRef(ref, task.name, path, source, isinstance(dataset, dict) and "generator" in dataset)


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
    """The gold continuation: the gold choice, or a multiple-input example's shared target."""
    return task.target_delimiter + (example["target"] if "target" in example else example["choices"][example["gold"]])


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
                parts = [render(task, p, d) + answer(task, d) for d in demos]
                description = task.description.format(**x["fields"])
                if "target" in x:  # multiple input: the context ends where each choice's own text goes
                    context = description + "".join(part + task.fewshot_delimiter for part in parts)
                else:
                    context = description + task.fewshot_delimiter.join([*parts, render(task, p, x)])
                requests.append(
                    Request(
                        task=task.name,
                        prompt=p,
                        shots=k,
                        example=x["id"],
                        context=context,
                        choices=tuple(x["choices"]),
                        gold=x["gold"],
                        target_delimiter=task.target_delimiter,
                        target=x.get("target"),
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


def lm_eval_examples(task_yaml, files: dict | None = None, cache_dir=None, rows: dict | None = None) -> list[dict]:
    """Examples ({id, split, fields, choices, gold}) of a task in lm-eval's YAML format.

    lm-eval's own ConfigurableTask renders them (doc_to_text, doc_to_choice, doc_to_target, its
    process_docs, its description). files: {split: JSONL or Parquet path} in the dataset's own format,
    which replace the dataset (a split the files lack is left out of the task); None: the dataset the
    YAML names, from the hub (or the local HF cache), its few-shot and evaluation splits.
    rows: {split: [row, ...]} read from those files already (the config check renders each file's
    first row, so that a form lmforecast does not score stops the parse, not a job).
    The prompt is fields.text, the description fields.description.
    """
    from lm_eval.api.task import ConfigurableTask
    from lm_eval.tasks._yaml_loader import load_yaml

    cfg = load_yaml(task_yaml, resolve_func=True)
    split_keys = {"training_split": "training_docs", "validation_split": "validation_docs", "test_split": "test_docs"}
    if rows is not None:
        import datasets

        loaded = datasets.DatasetDict({split: datasets.Dataset.from_list(r) for split, r in rows.items()})
        cfg["custom_dataset"] = lambda **kwargs: loaded  # lm-eval's hook for a dataset of one's own
        for key in (*split_keys, "fewshot_split"):
            if cfg.get(key) not in rows:
                cfg[key] = None
        splits, source = list(rows), {split: f"{(files or {}).get(split, split)}" for split in rows}
    elif files is not None:
        formats = {DATA_FORMATS.get(Path(f).suffix) for f in files.values()}
        if None in formats or len(formats) != 1:
            raise TaskError(
                f"{cfg['task']}: {sorted(map(str, files.values()))}; expected files all ending in one of {sorted(DATA_FORMATS)}"
            )
        kwargs = {"data_files": {split: str(f) for split, f in files.items()}} | (
            {"cache_dir": str(cache_dir)} if cache_dir else {}
        )
        cfg.update(dataset_path=formats.pop(), dataset_name=None, dataset_kwargs=kwargs)
        for key in (*split_keys, "fewshot_split"):
            if cfg.get(key) not in files:
                cfg[key] = None
        splits, source = list(files), files
    else:
        spec = load_task(task_yaml)
        splits = list(dict.fromkeys([spec.fewshot_split, spec.eval_split]))
        source = {split: f"{cfg.get('dataset_path')}[{split}]" for split in splits}
    if rows is not None:  # lm-eval warns that a custom dataset takes --metadata: nothing to say here
        import logging

        quiet = logging.getLogger("lm_eval.api.task")
        level = quiet.level
        quiet.setLevel(logging.ERROR)
        try:
            task = ConfigurableTask(config=cfg)
        finally:
            quiet.setLevel(level)
    else:
        task = ConfigurableTask(config=cfg)
    docs_of = {cfg[key]: getattr(task, method) for key, method in split_keys.items() if cfg.get(key)}
    if cfg.get("fewshot_split"):  # a split of its own for demonstrations (MMLU's dev)
        docs_of.setdefault(cfg["fewshot_split"], task.fewshot_docs)
    examples = []
    for split in splits:
        if split not in docs_of:
            raise TaskError(f"{cfg['task']}: split {split!r} is not one of the task's splits {sorted(docs_of)}")
        for i, doc in enumerate(docs_of[split]()):
            text, choices, target = task.doc_to_text(doc), task.doc_to_choice(doc), task.doc_to_target(doc)
            where = f"{cfg['task']}: {source[split]}: row {i}"
            description = task.resolve_field(doc, cfg.get("description")) or ""
            if task.multiple_input:
                # lm-eval's multiple-input form (api/task.py): doc_to_text is the gold index, doc_to_choice each
                # choice's context, doc_to_target their shared continuation; a demonstration is the gold context
                if not isinstance(text, int) or not 0 <= text < len(choices) or not isinstance(target, str):
                    raise TaskError(
                        f"{where}: a multiple-input task's doc_to_text gives {text!r} and doc_to_target {target!r}; "
                        f"expected the index of one of {len(choices)} contexts and a continuation"
                    )
                examples.append(
                    {
                        "id": f"{cfg['task']}-{split}-{i}",
                        "split": split,
                        "fields": {"text": choices[text], "description": description},
                        "choices": [str(c) for c in choices],
                        "gold": text,
                        "target": target,
                    }
                )
                continue
            if not isinstance(text, str):
                raise TaskError(f"{where}: doc_to_text gives {type(text).__name__}, not a prompt (nor, as row 0's, an index)")
            if isinstance(target, list):
                raise TaskError(
                    f"{where}: doc_to_target gives a list (lm-eval's multiple targets), which lmforecast does not score"
                )
            if isinstance(target, str):  # a choice's text, or an index as text
                target = list(choices).index(target) if target in choices else int(target) if target.isdigit() else target
            if not isinstance(target, int) or not 0 <= target < len(choices):
                raise TaskError(f"{where}: doc_to_target gives {target!r}; expected the index of one of {len(choices)} choices")
            examples.append(
                {
                    "id": f"{cfg['task']}-{split}-{i}",
                    "split": split,
                    "fields": {"text": text, "description": description},
                    "choices": [str(c) for c in choices],
                    "gold": target,
                }
            )
    return examples
