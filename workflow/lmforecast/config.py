"""Configuration: validation with messages that name the field, and the run plan.

`validate` runs when the Snakefile is parsed, before any job: a JSON schema
(workflow/schemas/config.schema.yaml) for keys and types, then the checks a schema
cannot express (references between sections, divisibility, sums, budgets).
"""

import itertools
import json
import math
import re
import sys
from pathlib import Path

import jsonschema
import yaml

from lmforecast.fits.registry import registry
from lmforecast.measure import SFT_METHODS, imports
from lmforecast.measure.tasks import (
    DATA_FORMATS,
    TaskError,
    is_lm_eval_format,
    lm_eval_examples,
    load_task,
    read_task_yaml,
    resolve_task,
)
from lmforecast.settings import ConfigError, Domain, Evaluation, Pretrain, Sft, Size, Tokenizer, Training, World
from lmforecast.train.objectives import R_DENOISER, sentinels_needed, source_length

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "schemas" / "config.schema.yaml"
TASKS_DIR = Path(__file__).resolve().parents[2] / "resources" / "tasks"
# The embedded default, as the Snakefile names it (`configfile:`, relative to the working directory).
DEFAULT_CONFIG = Path("config") / "config.yaml"
PROFILE = Path(__file__).resolve().parent.parent / "profiles" / "default" / "config.yaml"


def task_refs(config) -> dict:
    """evaluation.tasks resolved (measure/tasks.py's resolve_task): the task's name -> TaskRef."""
    return {ref.name: ref for ref in map(resolve_task, config["evaluation"]["tasks"])}


def sft_task_names(config) -> list[str]:
    """The names of sft.tasks (references, as evaluation.tasks)."""
    return [resolve_task(t).name for t in config["sft"]["tasks"]]


def dataset_tasks(config) -> list[str]:
    """The evaluated tasks whose examples come from their dataset's files (evaluation.task_data), not the world rule."""
    return [name for name, ref in task_refs(config).items() if not ref.world]


def _task_errors(config) -> list[str]:
    """Every task reference of evaluation.tasks and sft.tasks resolves (to a multiple-choice task), names unique."""
    errors, names = [], {"evaluation": {}, "sft": {}}
    for section in names:
        for i, ref in enumerate(config[section]["tasks"]):
            try:
                task = resolve_task(ref)
            except TaskError as e:
                errors.append(f"{section}.tasks[{i}]: {e}")
                continue
            if task.name in names[section]:
                errors.append(f"{section}.tasks[{i}]: {ref!r} is task {task.name!r} again (as {names[section][task.name]!r})")
            names[section][task.name] = ref
    return errors


def _sft_task_errors(config) -> list[str]:
    unknown = sorted(set(sft_task_names(config)) - set(task_refs(config)))
    return [f"sft.tasks: {unknown} are not in evaluation.tasks"] if unknown else []


def _first_row(path: Path) -> dict:
    """The first row of a JSONL or Parquet file (the fields a file has, without reading it all)."""
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        table = pq.ParquetFile(path).read_row_group(0) if pq.ParquetFile(path).num_row_groups else None
        return table.slice(0, 1).to_pylist()[0] if table is not None and table.num_rows else {}
    with open(path) as f:
        line = next((line for line in f if line.strip()), None)
    return json.loads(line) if line else {}


def _has_chat_template(directory) -> bool:
    d = Path(directory)
    if (d / "chat_template.jinja").is_file() or (d / "chat_template.json").is_file():
        return True
    config = d / "tokenizer_config.json"
    return config.is_file() and bool(json.loads(config.read_text()).get("chat_template"))


def _sft_data_errors(config) -> list[str]:
    """sft.data: files present, of a known format, with the fields SFT needs; chats only for tokenizers with a
    chat template; sft.weights naming tasks or data sources. Checked on each file's first row, before any job."""
    from lmforecast.measure.sft import SftDataError, instruction_format

    sft, errors = config["sft"], []
    names = set(sft_task_names(config))
    for i, d in enumerate(sft.get("data", [])):
        where, path = f"sft.data[{i}]", Path(d["path"])
        if d["name"] in names:
            errors.append(f"{where}.name: {d['name']!r} is already the name of an SFT task or data source")
        names.add(d["name"])
        if path.suffix not in DATA_FORMATS:
            errors.append(f"{where}.path: {d['path']!r}; expected a file ending in one of {sorted(DATA_FORMATS)}")
            continue
        if not path.is_file():
            errors.append(f"{where}.path: {d['path']!r} does not exist")
            continue
        try:
            row = _first_row(path)
            if not row:
                raise SftDataError(f"{d['path']}: no rows")
            kind = instruction_format(row, f"{d['path']}: row 0")
        except (SftDataError, ValueError) as e:
            errors.append(f"{where}: {e}")
            continue
        chat = kind == "conversational" or not isinstance(row.get("prompt"), str)
        if chat:
            lacking = ["the trained runs (their BPE tokenizer has no chat template)"] if config["runs"] else []
            lacking += [
                f"external model {e['name']!r}"
                for e in config.get("external", [])
                if not all(_has_chat_template(p) for p in ([e["path"]] if "path" in e else e["steps"].values()))
            ]
            if lacking:
                errors.append(f"{where}: chat messages need a tokenizer with a chat template; {', '.join(lacking)} lack one")
    unknown = sorted(set(sft.get("weights", {})) - names)
    if unknown:
        errors.append(f"sft.weights: {unknown} are neither sft.tasks nor sft.data names; expected some of {sorted(names)}")
    return errors


def warn(message: str):
    """A setting accepted that may not do what it says, or a file found stale: said before any job."""
    print(f"lmforecast: warning: {message}", file=sys.stderr, flush=True)


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


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing duplicate keys: PyYAML (and so Snakemake) keeps the last without a word."""

    def construct_mapping(self, node, deep=False):
        first = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in first:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"duplicate key {key!r} (first at line {first[key] + 1}); expected each key once",
                    key_node.start_mark,
                )
            first[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep)


def read_yaml(path):
    """A config file's content, read strictly (duplicate keys refused); errors name the file, line and column."""
    path = Path(path)
    try:
        with open(path) as f:  # a stream: its marks name the file
            return yaml.load(f, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from e
    except OSError as e:
        raise ConfigError(f"{path}: cannot be read ({e.strerror})") from e


def _nonfinite_errors(obj, path=()) -> list[str]:
    """NaN and infinities (YAML's .nan, .inf), by field: no schema keyword refuses them (NaN passes every bound)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return [f"{_where(path)}: {obj} is not a finite number; expected a finite number"]
    if isinstance(obj, dict):
        return [e for k, v in obj.items() for e in _nonfinite_errors(v, (*path, k))]
    if isinstance(obj, list):
        return [e for i, v in enumerate(obj) for e in _nonfinite_errors(v, (*path, i))]
    return []


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
        errors, imported = _import_errors(config["import"]), None
        if not errors:
            try:  # the imported files, read once now: bad ones stop the parse, and the fits' checks see these tables
                imported = imports.import_tables(config["import"])
            except imports.ImportDataError as e:
                errors = [str(e)]
        if config.get("runs"):
            # the embedded default's runs are merged under a --configfile: an analysis config empties them
            errors.append(
                "runs: an analysis-only config (with 'import') trains nothing; expected 'runs: []' "
                "(or run with --replace-workflow-config and no runs)"
            )
        return errors + _fit_errors(config, imported)
    if not config["runs"] and not config.get("external"):
        return [
            "runs: empty; expected at least one run to train, or an 'import' section (analysis-only), "
            "or an 'external' list of published models to evaluate"
        ]
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
    if world.qa_entities > world.n_sft_entities:
        errors.append(
            f"world.qa_entities: {world.qa_entities} is more than the {world.n_sft_entities} SFT entities "
            f"(world.sft_entities); expected at most that, so that no eval question occurs in the facts text"
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
    errors += _data_errors(config, tokenizer)
    if training.schedule == "wsd":
        for key in ("decay_frac", "decay_shape"):
            if getattr(training, key) is None:
                errors.append(f"training.{key}: required by schedule 'wsd'")
        if training.decay_frac is not None and training.decay_frac + training.warmup_frac > 1:
            errors.append(
                f"training: warmup_frac + decay_frac must be at most 1, got {training.warmup_frac:g} + {training.decay_frac:g}"
            )
    if training.micro_batch_size is not None and training.batch_size % training.micro_batch_size:
        errors.append(
            f"training.micro_batch_size: {training.micro_batch_size} must divide batch_size {training.batch_size} "
            "(batch_size = micro_batch_size x gradient accumulation steps x processes)"
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
    task_errors = _task_errors(config)
    if task_errors:  # the checks below read the tasks
        return errors + task_errors + _external_errors(config, seen)
    errors += _evaluation_errors(config, seen)
    errors += _sft_task_errors(config)
    errors += _sft_data_errors(config)
    errors += _fit_errors(config)
    errors += _prompt_errors(config)
    errors += _capacity_errors(config, world, tokenizer)
    return errors


def _available_examples(world: World, ref: str, split: str) -> int | None:
    """How many examples of a synthetic task's split the world rule writes (None: a dataset task, known when read)."""
    task = resolve_task(ref)
    if not task.world:
        return None
    if task.name == "fact_qa":  # 3 questions per entity, the SFT split's entities apart
        n_sft = world.n_sft_entities
        return min(world.sft_examples, 3 * n_sft) if split == "sft" else min(world.eval_examples, 3 * (world.n_entities - n_sft))
    if task.name == "arith_mc":  # its distinct problems, the SFT split's apart
        from lmforecast.data.world import ARITH_PROBLEMS

        n_sft = min(world.sft_examples, ARITH_PROBLEMS)
        return n_sft if split == "sft" else min(world.eval_examples, ARITH_PROBLEMS - n_sft)
    return world.sft_examples if split == "sft" else world.eval_examples


def _capacity_errors(config, world: World, tokenizer: Tokenizer) -> list[str]:
    """Settings above what exists (which the stages would cap without a word), by field; and sizes whose
    training would not fit in the pretrain job's memory (mem_mb), with the estimate."""
    errors, ev = [], config["evaluation"]
    for key, tasks in (("evaluation.examples_per_task", ev["tasks"]), ("sft.examples_per_task", config["sft"]["tasks"])):
        wanted = config[key.split(".")[0]]["examples_per_task"]
        for task in tasks:
            have = _available_examples(world, task, "eval")
            if have is not None and wanted > have:
                errors.append(
                    f"{key}: {wanted} is above the {have} eval examples of {task} (world.eval_examples, and for fact_qa "
                    f"3 per eval entity, for arith_mc its distinct problems less the SFT split's); expected at most {have}"
                )
    if ev.get("fewshot_examples_per_task", 0) > ev["examples_per_task"]:  # harmless (all are scored k-shot): said, not refused
        warn(
            f"evaluation.fewshot_examples_per_task: {ev['fewshot_examples_per_task']} is above examples_per_task "
            f"({ev['examples_per_task']}); every example is scored k-shot"
        )
    for task in ev["tasks"]:
        have = _available_examples(world, task, "sft")
        if have is not None and max(ev["shots"]) > have:
            errors.append(
                f"evaluation.shots: {max(ev['shots'])} demonstrations, but {task}'s few-shot split has {have} examples "
                f"(world.sft_examples); expected at most {have}"
            )
    clusters = config["fit"].get("relatedness", {}).get("clusters")
    if clusters is not None and clusters > ev["examples_per_task"]:
        errors.append(
            f"fit.relatedness.clusters: {clusters} groups of examples per task, above the {ev['examples_per_task']} "
            "examples scored per task (evaluation.examples_per_task); expected at most that"
        )
    mem_mb = pretrain_mem_mb()
    trained = {run["size"] for run in config["runs"]}  # a size no run uses is never built
    for name, size in [(n, s) for n, s in config["sizes"].items() if n in trained]:
        need = pretrain_memory_mb(Size.from_dict(size), Training.from_dict(config["training"]), tokenizer)
        if mem_mb is not None and need > mem_mb:
            errors.append(
                f"sizes.{name}: training it needs about {need:,.0f} MB (16 bytes per parameter for weights, gradients and "
                f"Adam's moments, plus activations), above the pretrain job's mem_mb ({mem_mb}, {_mem_mb_source()}); "
                "expected a smaller size, or more mem_mb (set-resources pretrain:mem_mb)"
            )
    return errors


# Torch, the tokenizer and the shards in memory before the first step: a smoke pretrain job (size xs,
# 16 steps) peaked at 358 MB max RSS on this project's CPU machine; the estimate adds what grows with the model.
PRETRAIN_BASE_MB = 400


def pretrain_memory_mb(size: Size, training: Training, tokenizer: Tokenizer) -> float:
    """An estimate (an upper one) of a pretrain job's peak memory: fp32 weights, gradients and Adam's two
    moments (16 bytes per parameter, tied embedding counted once), and the activations that backward keeps
    (per layer and token: about 16 d_model + 3 ffn floats, attention's seq_len per head; logits 3x), of the rows
    of one forward/backward: micro_batch_size when given (gradient accumulation keeps no activations), else the batch."""
    vocab = _vocab_size(tokenizer) + tokenizer.sentinels
    params = size.n_params_nonembed + vocab * size.d_model
    rows = training.micro_batch_size or training.batch_size
    tokens = rows * training.seq_len
    per_layer = tokens * (16 * size.d_model + 3 * size.intermediate_size) + rows * size.n_heads * training.seq_len**2 * 2
    activations = 4 * (size.n_layers * per_layer + 3 * tokens * vocab)
    return PRETRAIN_BASE_MB + (16 * params + activations) / 2**20


def _vocab_size(tokenizer: Tokenizer) -> int:
    """The trained BPE's vocabulary, or a tokenizer directory's as its tokenizer.json lists it (0 when it has
    none: the estimate then leaves out the embedding and the logits, a lower bound)."""
    if tokenizer.vocab_size is not None:
        return tokenizer.vocab_size
    path = Path(tokenizer.path) / "tokenizer.json"
    if not path.is_file():
        return 0
    spec = json.loads(path.read_text())
    return len(spec.get("model", {}).get("vocab") or ()) + len(spec.get("added_tokens") or ())


_MEM_MB_OVERRIDE = None


def pretrain_mem_mb():
    """The pretrain job's mem_mb: the one the running workflow set (set_pretrain_mem_mb, from common.smk),
    else the default profile's (workflow/profiles/default, which Snakemake applies)."""
    if _MEM_MB_OVERRIDE is not None:
        return _MEM_MB_OVERRIDE
    try:
        import yte

        with open(PROFILE) as f:
            profile = yte.process_yaml(f)
        return int(profile["set-resources"]["pretrain"]["mem_mb"])
    except (OSError, KeyError, TypeError, ValueError):
        return None


def _mem_mb_source() -> str:
    return "as this run sets it" if _MEM_MB_OVERRIDE is not None else f"{PROFILE.parent.name} profile"


def set_pretrain_mem_mb(mem_mb):
    global _MEM_MB_OVERRIDE
    _MEM_MB_OVERRIDE = None if mem_mb is None else int(mem_mb)


def domains(config: dict) -> dict:
    """Config `domains` (name -> source), or the synthetic world's four domains when it has none."""
    from lmforecast.data.world import DOMAINS

    return config.get("domains") or {d: {"world": d} for d in DOMAINS}


def _data_errors(config, tokenizer: Tokenizer) -> list[str]:
    """Domains: one source each, files that exist, held-out text; the tokenizer; the mixtures that runs use."""
    from lmforecast.data import sources
    from lmforecast.data.tokenizer import HF_TOKENIZER_FILES
    from lmforecast.data.world import DOMAINS

    errors = []
    configured = domains(config)
    for name, d in configured.items():
        where, domain = f"domains.{name}", Domain.from_dict(d)
        given = [k for k in ("world", "files", "dataset") if getattr(domain, k) is not None]
        if len(given) != 1:
            errors.append(f"{where}: give exactly one source (world, files or dataset), got {given or 'none'}")
            continue
        if domain.world is not None:
            if domain.world not in DOMAINS:
                errors.append(f"{where}.world: {domain.world!r} is not one of the world's domains {list(DOMAINS)}")
            if domain.heldout_docs is not None or domain.eval_files is not None:
                errors.append(
                    f"{where}: a world domain's held-out text is its valid split (world.valid_docs); expected no heldout_docs or eval_files"
                )
            continue
        if (domain.heldout_docs is None) == (domain.eval_files is None):
            errors.append(
                f"{where}: give exactly one of heldout_docs (taken out of the training data) or eval_files (the domain losses' text)"
            )
        for key in ("files", "eval_files"):
            if getattr(domain, key) is not None:
                try:
                    sources.expand(getattr(domain, key), f"{where}.{key}")
                except ConfigError as e:
                    errors.append(str(e))
        if domain.chunk_files is not None and domain.files is None:
            errors.append(f"{where}.chunk_files: only a files source is tokenized in chunks of files; expected no chunk_files")
        if domain.dataset is not None and not Path(domain.dataset).exists() and Path(domain.dataset).is_absolute():
            errors.append(f"{where}.dataset: {domain.dataset!r} does not exist")
    if tokenizer.path is not None:
        path = Path(tokenizer.path)
        if not path.is_dir():
            errors.append(f"tokenizer.path: {tokenizer.path!r} is not a directory; expected a Hugging Face tokenizer directory")
        elif not any((path / f).is_file() for f in HF_TOKENIZER_FILES):
            errors.append(
                f"tokenizer.path: {tokenizer.path!r} has no tokenizer files; expected one of {list(HF_TOKENIZER_FILES)}"
            )
    elif tokenizer.vocab_size is None:
        errors.append("tokenizer: give vocab_size (a BPE trained on the domains) or path (a Hugging Face tokenizer directory)")
    # Only the mixtures that runs use: a --configfile is merged onto the default, whose mixtures name the world's domains.
    used = {run["mixture"] for run in config["runs"]}
    for name in sorted(used & set(config["mixtures"])):
        for domain in config["mixtures"][name]:
            if domain not in configured:
                errors.append(f"mixtures.{name}: {domain!r} is not one of the configured domains {list(configured)}")
    return errors


def _fit_errors(config, imported=None) -> list[str]:
    """Each configured fit's own checks against the whole config (its registry entry's `check`) and, in
    analysis-only mode, against the imported tables (`check_imported`; none where the files are bad)."""
    errors = []
    for fit in registry():
        if fit.name in config["fit"]:
            errors += fit.check(config)
            if imported is not None and fit.check_imported is not None:
                errors += fit.check_imported(config, imported)
    return errors


def _prompt_settings() -> list[tuple]:
    """Settings that pick one prompt template per task (a name every task has, or a mapping {task: name};
    tasks left out of it use their first template): sft's, and every fit's that has a `prompt`."""
    return [("sft",)] + [("fit", f.name) for f in registry() if "prompt" in f.schema_dict()["properties"]]


def _prompt_errors(config) -> list[str]:
    """Every prompt setting names a template of each task it applies to (an evaluated one, for the fits)."""
    evaluation = config["evaluation"]
    templates = {name: list(load_task(ref.path).prompts) for name, ref in task_refs(config).items()}
    prompts_for = Evaluation.from_dict(evaluation_spec(config)).prompts_for
    evaluated = {t: prompts_for(t, names) for t, names in templates.items()}
    errors = []
    for task, names in evaluation.get("prompts", {}).items():
        if task not in templates:
            errors.append(f"evaluation.prompts.{task}: not a task of evaluation.tasks {sorted(templates)}")
        elif set(names) - set(templates[task]):
            errors.append(
                f"evaluation.prompts.{task}: {sorted(set(names) - set(templates[task]))} not among {task}'s prompts {templates[task]}"
            )
    for path in _prompt_settings():
        section = config.get(path[0], {}) if len(path) == 1 else config.get(path[0], {}).get(path[1], {})
        prompt = section.get("prompt")
        if not prompt:
            continue
        where = ".".join(path) + ".prompt"
        # SFT renders its own requests from the task's templates; a fit reads the evaluated ones
        usable = {t: templates[t] for t in sft_task_names(config) if t in templates} if path == ("sft",) else evaluated
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
    errors, ev = _external_errors(config, run_names), config["evaluation"]
    refs, sft_tasks = task_refs(config), sft_task_names(config)
    data = ev.get("task_data", {})
    for task in dataset_tasks(config):
        if task not in data:
            errors.append(
                f"evaluation.task_data.{task}: missing; task {task!r} is read from local files, expected "
                f"{{split: path}} with the splits of {refs[task].path}"
            )
    for task, files in data.items():
        if task not in refs or refs[task].world:
            errors.append(
                f"evaluation.task_data.{task}: not a task of evaluation.tasks read from files; expected one of {dataset_tasks(config)}"
            )
            continue
        if files == "hub":  # the dataset its YAML names, loaded by the task_data job
            continue
        spec, before = load_task(refs[task].path), len(errors)
        needed = [spec.eval_split] + ([spec.fewshot_split] if max(ev["shots"]) > 0 or task in sft_tasks else [])
        for split in dict.fromkeys(needed):
            if split not in files:
                errors.append(
                    f"evaluation.task_data.{task}.{split}: missing; {task} evaluates on {spec.eval_split!r}"
                    f" and draws demonstrations (and SFT examples) from {spec.fewshot_split!r}"
                )
        for split, file in files.items():
            where = f"evaluation.task_data.{task}.{split}"
            if Path(file).suffix not in DATA_FORMATS:
                errors.append(f"{where}: {file!r}; expected a file ending in one of {sorted(DATA_FORMATS)}")
            elif not Path(file).is_file():
                errors.append(f"{where}: {file!r} does not exist")
        if len(errors) == before and is_lm_eval_format(read_task_yaml(refs[task].path)):
            errors += _lm_eval_row_errors(task, refs[task].path, files)
    return errors


def _lm_eval_row_errors(task: str, path, files: dict) -> list[str]:
    """Each file's first row through lm-eval's own task code, as rule task_data renders them all: a form that
    lmforecast does not score (multiple targets) or a row without the fields the task reads stops the parse."""
    rows = {split: [_first_row(Path(file))] for split, file in files.items()}
    try:
        lm_eval_examples(path, files, rows=rows)
    except TaskError as e:
        return [f"evaluation.task_data.{task}: {e}"]
    except (KeyError, IndexError, TypeError, ValueError) as e:  # lm-eval's templates and functions on a bad row
        return [
            f"evaluation.task_data.{task}: row 0 of {sorted(map(str, files.values()))} through {path}: "
            f"{type(e).__name__}: {e}; expected rows in the format of the dataset the task names"
        ]
    return []


def _external_errors(config, run_names) -> list[str]:
    """External model directories: present, each a Hugging Face model directory, names unique."""
    errors, names = [], []
    for i, ext in enumerate(config.get("external", [])):
        where = f"external[{i}]"
        if ext["name"] in run_names or ext["name"] in names:
            errors.append(f"{where}.name: {ext['name']!r} is already the name of a run or external model")
        names.append(ext["name"])
        if ("path" in ext) == ("steps" in ext):
            errors.append(f"{where}: give exactly one of path (one model) or steps ({{step: directory}}, a suite's checkpoints)")
            continue
        if "path" in ext:
            dirs = {f"{where}.path": ext["path"]}
        else:
            dirs = {}
            for step, path in ext["steps"].items():
                if not str(step).isdigit():
                    errors.append(f"{where}.steps: {step!r} is not a step; expected {{step (an integer >= 0): directory}}")
                dirs[f"{where}.steps.{step}"] = path
        for field, path in dirs.items():
            if not Path(path).is_dir():
                errors.append(
                    f"{field}: {path!r} is not a directory; expected a Hugging Face model directory "
                    "(config.json, weights and tokenizer, as save_pretrained writes them)"
                )
            elif not (Path(path) / "config.json").is_file():
                errors.append(f"{field}: {path!r} has no config.json; expected a Hugging Face model directory")
    return errors


def validate(config: dict, source: str = "config") -> dict:
    """Raise ConfigError listing every problem, each prefixed with the field it concerns."""
    errors = _nonfinite_errors(config) or _schema_errors(config)
    if not errors:
        errors = _semantic_errors(config)
    if errors:
        raise ConfigError(f"invalid {source}:\n  " + "\n  ".join(errors))
    return config


def _mapping(path) -> dict:
    config = read_yaml(path)
    if not isinstance(config, dict):
        raise ConfigError(f"{path}: expected a mapping of sections at the top level")
    return config


def merged(paths) -> dict:
    """The config the workflow sees: the files merged in order as Snakemake merges them (its update_config:
    a later file's key replaces the earlier's, mappings merged key by key), each read strictly."""
    from snakemake.utils import update_config

    config = {}
    for path in paths:
        update_config(config, _mapping(path))
    return config


# Sections of named entries: an entry the file leaves out is not a removed key (the default's come along unused
# unless a run names them; a run naming an unknown one is an error of its own).
NAMED_ENTRIES = ("fit.", "sizes.", "mixtures.")


def filled_in(paths) -> list[str]:
    """Keys that a file's mappings lack and the files merged under it fill in (at any depth; a section the
    file leaves out entirely is not listed: that one is meant to come from below). A key removed from a
    copy of the default comes back from the default under the merge, so the workflow names them. Each entry
    of a section of named entries (NAMED_ENTRIES) is a section of its own: a fit, size or mixture the file
    leaves out comes from below unsaid (an analysis-only config names the fits it configures, and the
    default's others do not run on imports)."""

    def walk(base, top, where):
        for k, v in base.items():
            if k not in top:
                if where not in NAMED_ENTRIES:
                    yield f"{where}{k}"
            elif isinstance(v, dict) and isinstance(top[k], dict):
                yield from walk(v, top[k], f"{where}{k}.")

    found = set()
    for i in range(1, len(paths)):
        found |= {k for k in walk(merged(paths[:i]), _mapping(paths[i]), "") if "." in k}
    return sorted(found)


def load(path, default=DEFAULT_CONFIG) -> dict:
    """Validate `path` as the workflow would see it: merged onto the embedded default (`default`, as
    `configfile:` names it, relative to the working directory) unless it is that file or default is None."""
    path = Path(path)
    paths = (
        [path]
        if default is None or not Path(default).is_file() or Path(default).resolve() == path.resolve()
        else [Path(default), path]
    )
    filled = filled_in(paths) if len(paths) > 1 else []
    if filled:
        warn(f"keys absent from {path}'s sections, taken from {paths[0]}: " + ", ".join(filled))
    return validate(merged(paths), " merged onto ".join(map(str, paths[::-1])))


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
    # with config `domains`, each domain's held-out set is what its config gives (heldout_docs, eval_files)
    docs = None if "domains" in config else config["world"]["valid_docs"]
    return {k: v for k, v in config["evaluation"].items() if k != "task_data"} | {"domain_docs": docs}
