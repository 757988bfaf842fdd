"""Configuration: validation with messages that name the field, and the run plan.

`validate` runs when the Snakefile is parsed, before any job: a JSON schema
(workflow/schemas/config.schema.yaml) for keys and types, then the checks a schema
cannot express (references between sections, divisibility, sums, budgets).
"""

import itertools
import re
from pathlib import Path

import jsonschema
import yaml

from lmforecast.fits.registry import registry
from lmforecast.measure import SFT_METHODS, imports
from lmforecast.measure.tasks import DATA_FORMATS, load_task
from lmforecast.settings import ConfigError, Evaluation, Pretrain, Sft, Size, Tokenizer, Training, World
from lmforecast.train.objectives import R_DENOISER, sentinels_needed, source_length

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "schemas" / "config.schema.yaml"
TASKS_DIR = Path(__file__).resolve().parents[2] / "resources" / "tasks"
# Tasks whose examples come from a dataset's files (evaluation.task_data), not from the world rule.
DATASET_TASKS = ("arc_easy", "hellaswag")


def _where(path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def schema() -> dict:
    """The config's JSON schema: workflow/schemas/config.schema.yaml, with each registered fit's
    schema as fit.<name> (a fit's settings are declared once, by the fit) and the SFT methods."""
    full = yaml.safe_load(SCHEMA_PATH.read_text())
    full["$defs"]["sft_method"] = {"enum": list(SFT_METHODS)}
    fit = full["properties"]["fit"]
    fit["properties"] = {f.name: f.schema_dict() for f in registry()}
    fit["additionalProperties"] = False
    return full


def _schema_errors(config) -> list[str]:
    validator = jsonschema.Draft202012Validator(schema())
    messages = []
    for err in sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path))):
        if err.validator == "additionalProperties":
            extra = sorted(set(err.instance) - set(err.schema.get("properties", {})))
            expected = sorted(err.schema.get("properties", {}))
            messages.append(f"{_where(err.absolute_path)}: unknown key(s) {extra}; expected one of {expected}")
        elif err.validator == "oneOf" and "description" in err.schema:
            # "not valid under any of the given schemas" says nothing: say what is expected
            messages.append(f"{_where(err.absolute_path)}: {err.instance!r} is not valid; expected {err.schema['description']}")
        else:
            messages.append(f"{_where(err.absolute_path)}: {err.message}")
    return messages


def _regex_errors(where, pattern, groups) -> list[str]:
    try:
        rx = re.compile(pattern)
    except re.error as e:
        return [f"{where}: {pattern!r} is not a valid regex ({e})"]
    missing = [g for g in groups if g not in rx.groupindex]
    return [f"{where}: {pattern!r} lacks the named group(s) {missing}; expected (?P<{missing[0]}>...)"] if missing else []


def _import_errors(imp) -> list[str]:
    """The import section: a source, a way to name files, regexes with the groups they must have."""
    errors = []
    if "ladder" not in imp and "lm_eval" not in imp:
        errors.append("import: neither 'ladder' nor 'lm_eval'; expected at least one source of tables")
    ladder = imp.get("ladder", {})
    if isinstance(ladder.get("domains"), str):
        errors += _regex_errors("import.ladder.domains", ladder["domains"], ["domain"])
    if isinstance(ladder.get("tasks"), str):
        errors += _regex_errors("import.ladder.tasks", ladder["tasks"], ["task", "metric"])
    if "lm_eval" in imp:
        lm = imp["lm_eval"]
        by_pattern, by_list = "dir" in lm or "pattern" in lm, "files" in lm
        if by_pattern == by_list or (by_pattern and not ("dir" in lm and "pattern" in lm)):
            errors.append(
                "import.lm_eval: expected either 'dir' with 'pattern' (a regex with named groups run and step) "
                "or 'files' (a list of {path, run, step}), not both or neither"
            )
        elif by_pattern:
            errors += _regex_errors("import.lm_eval.pattern", lm["pattern"], ["run", "step"])
    return errors


def _span_corruption_fits(seq_len: int, sentinels: int) -> bool:
    try:
        source_length(seq_len + 1, R_DENOISER, sentinels)
        return True
    except ValueError:
        return False


def _semantic_errors(config) -> list[str]:
    if "import" in config:
        errors = _import_errors(config["import"])
        errors = errors or imports.check(config["import"])  # the imported files, read now: bad ones stop the parse
        if config.get("runs"):
            # the embedded default's runs are merged under a --configfile: an analysis config empties them
            errors.append(
                "runs: an analysis-only config (with 'import') trains nothing; expected 'runs: []' "
                "(or run with --replace-workflow-config and no runs)"
            )
        return errors + _fit_errors(config)
    if not config["runs"]:
        return ["runs: empty; expected at least one run to train, or an 'import' section (analysis-only)"]
    errors = []
    # Stage settings from each stage's slice (the schema has checked keys and types): their defaults apply.
    world, training = World.from_dict(config["world"]), Training.from_dict(config["training"])
    tokenizer, sft = Tokenizer.from_dict(tokenizer_spec(config)), Sft.from_dict(config["sft"])
    sizes, mixtures = {name: Size.from_dict(size) for name, size in config["sizes"].items()}, config["mixtures"]
    if world.n_sft_entities >= world.n_entities:
        errors.append(
            f"world.sft_entities: {world.sft_entities} leaves none of the {world.n_entities} entities "
            f"(world.n_entities) for fact_qa's eval split; expected fewer than n_entities"
        )
    for name, size in sizes.items():
        if size.d_model % size.n_heads:
            errors.append(f"sizes.{name}: n_heads ({size.n_heads}) must divide d_model ({size.d_model})")
        elif (size.d_model // size.n_heads) % 2:
            errors.append(f"sizes.{name}: head size d_model / n_heads must be even (rotary embeddings)")
    for name, weights in mixtures.items():
        total = sum(weights.values())
        if abs(total - 1.0) > 1e-6:
            errors.append(f"mixtures.{name}: weights must sum to 1, got {total:g}")
    if training.schedule == "wsd":
        for key in ("decay_frac", "decay_shape"):
            if getattr(training, key) is None:
                errors.append(f"training.{key}: required by schedule 'wsd'")
        if training.decay_frac is not None and training.decay_frac + training.warmup_frac > 1:
            errors.append(
                f"training: warmup_frac + decay_frac must be at most 1, got {training.warmup_frac:g} + {training.decay_frac:g}"
            )
    # Evaluation measures every model's loss on a fixed span corruption of the held-out text (and span
    # objectives train on one): a row of seq_len + 1 tokens must hold a span, its sentinel and a token besides.
    short = not _span_corruption_fits(training.seq_len, tokenizer.sentinels)
    if short:
        shortest = next(n for n in itertools.count(1) if _span_corruption_fits(n, tokenizer.sentinels))
        errors.append(
            f"training.seq_len: {training.seq_len} is too short for span corruption (the evaluation's "
            f"span-corruption loss); expected at least {shortest}"
        )
    seen = set()
    for i, run in enumerate(config["runs"]):
        where = f"runs[{i}]"
        if run["name"] in seen:
            errors.append(f"{where}.name: duplicate run name {run['name']!r}")
        seen.add(run["name"])
        if run["size"] not in sizes:
            errors.append(f"{where}.size: unknown size {run['size']!r}; expected one of {sorted(sizes)}")
        if run["mixture"] not in mixtures:
            errors.append(f"{where}.mixture: unknown mixture {run['mixture']!r}; expected one of {sorted(mixtures)}")
        needed = 0 if short else sentinels_needed(run["objective"], training.seq_len)
        if needed > tokenizer.sentinels:
            errors.append(
                f"{where}.objective: {run['objective']} at seq_len {training.seq_len} needs {needed} sentinel tokens; "
                f"tokenizer.sentinels is {tokenizer.sentinels}"
            )
        given = [k for k in ("tokens", "tokens_per_param") if k in run]
        if len(given) != 1:
            errors.append(
                f"{where}: give exactly one of tokens or tokens_per_param (the training budget), got "
                + (" and ".join(given) if given else "neither")
            )
            continue
        if run["size"] not in sizes:
            continue
        tokens, minimum = run_tokens(run, sizes[run["size"]]), training.checkpoints * training.tokens_per_step
        if tokens < minimum:
            errors.append(
                f"{where}.{given[0]}: {tokens} tokens is below one training step per checkpoint "
                f"({training.checkpoints} checkpoints x {training.tokens_per_step} tokens per step = {minimum})"
            )
    needs = {"lora": ("lora_r", "lora_alpha"), "last_layers": ("last_layers",)}
    for method in sft.methods:
        for key in needs.get(method, ()):
            if getattr(sft, key) is None:
                errors.append(f"sft.{key}: required by sft method {method!r}")
    if "last_layers" in sft.methods and sft.last_layers is not None:
        for name, size in sizes.items():
            if sft.last_layers > size.n_layers:
                errors.append(f"sft.last_layers: {sft.last_layers} exceeds sizes.{name}.n_layers ({size.n_layers})")
    if not errors:  # every run's pretrain spec, and the evaluate rule's, read as their stages read them
        for run in config["runs"]:
            Pretrain.from_dict(pretrain_spec(config, run["name"]))
        Evaluation.from_dict(evaluation_spec(config))
    errors += _evaluation_errors(config, seen)
    unknown = set(config["sft"]["tasks"]) - set(config["evaluation"]["tasks"])
    if unknown:
        errors.append(f"sft.tasks: {sorted(unknown)} are not in evaluation.tasks")
    errors += _fit_errors(config)
    errors += _prompt_errors(config)
    return errors


def _fit_errors(config) -> list[str]:
    """Each configured fit's own checks against the whole config (its registry entry's `check`)."""
    return [e for fit in registry() if fit.name in config["fit"] for e in fit.check(config)]


def _prompt_settings() -> list[tuple]:
    """Settings that pick one prompt template per task (a name every task has, or a mapping {task: name};
    tasks left out of it use their first template): sft's, and every fit's that has a `prompt`."""
    return [("sft",)] + [("fit", f.name) for f in registry() if "prompt" in f.schema_dict()["properties"]]


def _prompt_errors(config) -> list[str]:
    """Every prompt setting names a template of each task it applies to (an evaluated one, for the fits)."""
    evaluation = config["evaluation"]
    templates = {t: list(load_task(TASKS_DIR / f"{t}.yaml").prompts) for t in evaluation["tasks"]}
    prompts_for = Evaluation.from_dict(evaluation_spec(config)).prompts_for
    evaluated = {t: prompts_for(t, names) for t, names in templates.items()}
    errors = []
    for path in _prompt_settings():
        section = config.get(path[0], {}) if len(path) == 1 else config.get(path[0], {}).get(path[1], {})
        prompt = section.get("prompt")
        if not prompt:
            continue
        where = ".".join(path) + ".prompt"
        # SFT renders its own requests from the task's templates; a fit reads the evaluated ones
        usable = {t: templates[t] for t in config["sft"]["tasks"]} if path == ("sft",) else evaluated
        if isinstance(prompt, str):
            lacking = [t for t, names in usable.items() if prompt not in names]
            if lacking:
                common = sorted(set.intersection(*map(set, usable.values())))
                errors.append(
                    f"{where}: {prompt!r} is not a prompt of {lacking}; expected a mapping {{task: prompt}}"
                    + (f" or a template every task has: {common}" if common else " (no template is common to all)")
                )
            continue
        for task, name in prompt.items():
            if task not in usable:
                errors.append(f"{where}.{task}: not one of the tasks it applies to {sorted(usable)}")
            elif name not in usable[task]:
                errors.append(f"{where}.{task}: {name!r} is not one of {task}'s prompts {usable[task]}")
    return errors


def _evaluation_errors(config, run_names) -> list[str]:
    """External model directories and the local files of dataset tasks: present, of a known format, every split needed."""
    errors, ev = [], config["evaluation"]
    names = []
    for i, ext in enumerate(config.get("external", [])):
        where = f"external[{i}]"
        if ext["name"] in run_names or ext["name"] in names:
            errors.append(f"{where}.name: {ext['name']!r} is already the name of a run or external model")
        names.append(ext["name"])
        path = Path(ext["path"])
        if not path.is_dir():
            errors.append(
                f"{where}.path: {ext['path']!r} is not a directory; expected a Hugging Face model directory "
                "(config.json, weights and tokenizer, as save_pretrained writes them)"
            )
        elif not (path / "config.json").is_file():
            errors.append(f"{where}.path: {ext['path']!r} has no config.json; expected a Hugging Face model directory")
    data = ev.get("task_data", {})
    for task in ev["tasks"]:
        if task in DATASET_TASKS and task not in data:
            errors.append(
                f"evaluation.task_data.{task}: missing; {task} is read from local files, expected "
                f"{{split: path}} with the splits of resources/tasks/{task}.yaml"
            )
    for task, files in data.items():
        spec = load_task(TASKS_DIR / f"{task}.yaml")
        needed = [spec.eval_split] + ([spec.fewshot_split] if max(ev["shots"]) > 0 else [])
        for split in dict.fromkeys(needed):
            if split not in files:
                errors.append(
                    f"evaluation.task_data.{task}.{split}: missing; {task} evaluates on {spec.eval_split!r}"
                    f" and draws demonstrations from {spec.fewshot_split!r}"
                )
        for split, file in files.items():
            where = f"evaluation.task_data.{task}.{split}"
            if Path(file).suffix not in DATA_FORMATS:
                errors.append(f"{where}: {file!r}; expected a file ending in one of {sorted(DATA_FORMATS)}")
            elif not Path(file).is_file():
                errors.append(f"{where}: {file!r} does not exist")
    return errors


def validate(config: dict, source: str = "config") -> dict:
    """Raise ConfigError listing every problem, each prefixed with the field it concerns."""
    errors = _schema_errors(config)
    if not errors:
        errors = _semantic_errors(config)
    if errors:
        raise ConfigError(f"invalid {source}:\n  " + "\n  ".join(errors))
    return config


def load(path) -> dict:
    path = Path(path)
    try:
        config = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from e
    if not isinstance(config, dict):
        raise ConfigError(f"{path}: expected a mapping of sections at the top level")
    return validate(config, str(path))


def run_tokens(run: dict, size: Size) -> int:
    """A run's training budget: `tokens`, or tokens_per_param x its size's non-embedding parameters.

    Non-embedding parameters (Kaplan et al. 2020; the OLMo ladder's N): the count does not
    depend on the vocabulary, and at these sizes the embedding would dominate the total.
    """
    if "tokens" in run:
        return run["tokens"]
    return int(round(run["tokens_per_param"] * size.n_params_nonembed))


def checkpoint_steps(tokens: int, training: Training) -> list[int]:
    """Steps of the checkpoints of a run of `tokens` tokens (evenly spaced, the last = the whole budget)."""
    total = tokens // training.tokens_per_step
    n = training.checkpoints
    return [round(total * (k + 1) / n) for k in range(n)]


def segments(steps: list[int], training: Training) -> list[list[int]]:
    """The run's checkpoint steps grouped into segments (one pretrain job each), in order:
    training.checkpoints_per_segment steps each, the last segment shorter if they do not divide."""
    k = training.checkpoints_per_segment
    return [steps[i : i + k] for i in range(0, len(steps), k)]


# The slices of the config that rules pass to their stages as params (--spec), built here once: the
# rules pass them, and validation builds each stage's settings from them.


def run_spec(config: dict, name: str) -> dict:
    """Everything a run's training depends on, resolved (settings.Run)."""
    run = next(r for r in config["runs"] if r["name"] == name)
    run = {**run, "tokens": run_tokens(run, Size.from_dict(config["sizes"][run["size"]]))}
    steps = checkpoint_steps(run["tokens"], Training.from_dict(config["training"]))
    return {
        **run,
        "size_name": run["size"],
        "size": config["sizes"][run["size"]],
        "mixture_name": run["mixture"],
        "mixture": config["mixtures"][run["mixture"]],
        "steps_total": steps[-1],
    }


def pretrain_spec(config: dict, name: str) -> dict:
    """The params of a run's pretrain jobs (settings.Pretrain): the run resolved, and training."""
    return {"run": run_spec(config, name), "training": config["training"]}


def tokenizer_spec(config: dict) -> dict:
    """The params of rule tokenizer (settings.Tokenizer)."""
    return {**config["tokenizer"], "seq_len": config["training"]["seq_len"]}


def evaluation_spec(config: dict) -> dict:
    """The params of rule evaluate (settings.Evaluation): task_data is rule task_data's."""
    return {k: v for k, v in config["evaluation"].items() if k != "task_data"} | {"domain_docs": config["world"]["valid_docs"]}
