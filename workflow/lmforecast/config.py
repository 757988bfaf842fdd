"""Configuration: validation with messages that name the field, and the run plan.

`validate` runs when the Snakefile is parsed, before any job: a JSON schema
(workflow/schemas/config.schema.yaml) for keys and types, then the checks a schema
cannot express (references between sections, divisibility, sums, budgets).
"""

from pathlib import Path

import jsonschema
import yaml

from lmforecast.objectives import sentinels_needed

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    pass


def _where(path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _schema_errors(config) -> list[str]:
    schema = yaml.safe_load(SCHEMA_PATH.read_text())
    validator = jsonschema.Draft202012Validator(schema)
    messages = []
    for err in sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path))):
        if err.validator == "additionalProperties":
            extra = sorted(set(err.instance) - set(err.schema.get("properties", {})))
            expected = sorted(err.schema.get("properties", {}))
            messages.append(f"{_where(err.absolute_path)}: unknown key(s) {extra}; expected one of {expected}")
        elif err.validator == "required":
            messages.append(f"{_where(err.absolute_path)}: {err.message}")
        else:
            messages.append(f"{_where(err.absolute_path)}: {err.message}")
    return messages


def _semantic_errors(config) -> list[str]:
    errors = []
    sizes, mixtures, training = config["sizes"], config["mixtures"], config["training"]
    for name, size in sizes.items():
        if size["d_model"] % size["n_heads"]:
            errors.append(f"sizes.{name}: n_heads ({size['n_heads']}) must divide d_model ({size['d_model']})")
        elif (size["d_model"] // size["n_heads"]) % 2:
            errors.append(f"sizes.{name}: head size d_model / n_heads must be even (rotary embeddings)")
    for name, weights in mixtures.items():
        total = sum(weights.values())
        if abs(total - 1.0) > 1e-6:
            errors.append(f"mixtures.{name}: weights must sum to 1, got {total:g}")
    if training["schedule"] == "wsd":
        for key in ("decay_frac", "decay_shape"):
            if key not in training:
                errors.append(f"training.{key}: required by schedule 'wsd'")
        if training.get("decay_frac", 0) + training["warmup_frac"] > 1:
            errors.append(f"training: warmup_frac + decay_frac must be at most 1, got "
                          f"{training['warmup_frac']:g} + {training['decay_frac']:g}")
    seen = set()
    tokens_per_step = training["batch_size"] * training["seq_len"]
    for i, run in enumerate(config["runs"]):
        where = f"runs[{i}]"
        if run["name"] in seen:
            errors.append(f"{where}.name: duplicate run name {run['name']!r}")
        seen.add(run["name"])
        if run["size"] not in sizes:
            errors.append(f"{where}.size: unknown size {run['size']!r}; expected one of {sorted(sizes)}")
        if run["mixture"] not in mixtures:
            errors.append(f"{where}.mixture: unknown mixture {run['mixture']!r}; expected one of {sorted(mixtures)}")
        needed = sentinels_needed(run["objective"], training["seq_len"])
        if needed > config["tokenizer"]["sentinels"]:
            errors.append(f"{where}.objective: {run['objective']} at seq_len {training['seq_len']} needs {needed} sentinel tokens; "
                          f"tokenizer.sentinels is {config['tokenizer']['sentinels']}")
        given = [k for k in ("tokens", "tokens_per_param") if k in run]
        if len(given) != 1:
            errors.append(f"{where}: give exactly one of tokens or tokens_per_param (the training budget), got "
                          + (" and ".join(given) if given else "neither"))
            continue
        if run["size"] not in sizes:
            continue
        tokens, minimum = run_tokens(run, sizes), training["checkpoints"] * tokens_per_step
        if tokens < minimum:
            errors.append(f"{where}.{given[0]}: {tokens} tokens is below one training step per segment "
                          f"({training['checkpoints']} segments x {tokens_per_step} tokens per step = {minimum})")
    sft = config["sft"]
    needs = {"lora": ("lora_r", "lora_alpha"), "last_layers": ("last_layers",)}
    for method in sft["methods"]:
        for key in needs.get(method, ()):
            if key not in sft:
                errors.append(f"sft.{key}: required by sft method {method!r}")
    if "last_layers" in sft["methods"] and "last_layers" in sft:
        for name, size in sizes.items():
            if sft["last_layers"] > size["n_layers"]:
                errors.append(f"sft.last_layers: {sft['last_layers']} exceeds sizes.{name}.n_layers ({size['n_layers']})")
    unknown = set(config["sft"]["tasks"]) - set(config["evaluation"]["tasks"])
    if unknown:
        errors.append(f"sft.tasks: {sorted(unknown)} are not in evaluation.tasks")
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


def n_params_nonembed(size: dict) -> int:
    """Non-embedding parameters of a size; the same count as model.n_params (tests check), without importing torch."""
    d, layers = size["d_model"], size["n_layers"]
    ffn = int(round(size.get("ffn_ratio", 3.0) * d))
    return layers * (4 * d * d + 3 * d * ffn + 2 * d) + d


def run_tokens(run: dict, sizes: dict) -> int:
    """A run's training budget: `tokens`, or tokens_per_param x its non-embedding parameters.

    Non-embedding parameters (Kaplan et al. 2020; the OLMo ladder's N): the count does not
    depend on the vocabulary, and at these sizes the embedding would dominate the total.
    """
    if "tokens" in run:
        return run["tokens"]
    return int(round(run["tokens_per_param"] * n_params_nonembed(sizes[run["size"]])))


def checkpoint_steps(run: dict, training: dict) -> list[int]:
    """Steps at which the run's segments end (evenly spaced, the last = the whole budget).

    `run` is a run_spec (its tokens resolved)."""
    total = run["tokens"] // (training["batch_size"] * training["seq_len"])
    n = training["checkpoints"]
    return [round(total * (k + 1) / n) for k in range(n)]


def run_spec(config: dict, name: str) -> dict:
    """Everything a run's training depends on, resolved: the `params` of its pretrain jobs."""
    run = next(r for r in config["runs"] if r["name"] == name)
    run = {**run, "tokens": run_tokens(run, config["sizes"])}
    steps = checkpoint_steps(run, config["training"])
    return {**run, "size_name": run["size"], "size": config["sizes"][run["size"]],
            "mixture_name": run["mixture"], "mixture": config["mixtures"][run["mixture"]], "steps_total": steps[-1]}
