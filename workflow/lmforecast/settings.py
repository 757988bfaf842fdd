"""Typed settings: each stage's slice of the config as a frozen dataclass.

A rule passes its slice as JSON (`--spec`); the CLI builds the stage's settings from it once,
and the stage code reads attributes, never config dicts. config.validate builds them too, when
the Snakefile is parsed, so a slice that a stage could not read stops the workflow before any job.
Every default is the default of a field here, and nowhere else.

Standard-library dataclasses, not pydantic: no new dependency, and the JSON schema
(workflow/schemas/config.schema.yaml) already checks types and ranges, so `from_dict` only checks the keys
(and builds nested settings).
"""

import types
import typing
from dataclasses import MISSING, dataclass, field, fields

from lmforecast.train.checkpoint import config_hash


class ConfigError(ValueError):
    pass


def _check_keys(cls, d: dict, derived=()):
    """Unknown or missing keys of `d` for settings `cls`, named (derived: fields not read from `d`)."""
    known = [f.name for f in fields(cls) if f.name not in derived]
    required = [f.name for f in fields(cls) if f.name not in derived and f.default is MISSING and f.default_factory is MISSING]
    unknown = sorted(set(d) - set(known))
    if unknown:
        raise ConfigError(f"{cls.__name__} settings: unknown key(s) {unknown}; expected one of {sorted(known)}")
    missing = [k for k in required if k not in d]
    if missing:
        raise ConfigError(f"{cls.__name__} settings: missing key(s) {missing}")


class Settings:
    """Base of every stage's and every fit's settings (fits/registry.py): a frozen dataclass built from
    its validated config slice. A field typed as settings is built from its mapping; a list given for
    a field typed `tuple[...]` becomes a tuple (of settings, where its items are)."""

    @classmethod
    def from_dict(cls, d: dict):
        _check_keys(cls, d)
        hints = typing.get_type_hints(cls)
        return cls(**{name: _typed(hints[name], value) for name, value in d.items()})


def _typed(kind, value):
    """`value` of the config as a field of type `kind` expects it (see Settings)."""
    options = typing.get_args(kind) if typing.get_origin(kind) in (typing.Union, types.UnionType) else (kind,)
    for option in options:
        if isinstance(value, dict) and isinstance(option, type) and issubclass(option, Settings):
            return option.from_dict(value)
        if isinstance(value, list) and typing.get_origin(option) is tuple:
            item = typing.get_args(option)[0]
            return tuple(_typed(item, v) for v in value)
    return value


@dataclass(frozen=True)
class World(Settings):
    """The synthetic world (lmforecast/data/world.py): the world rule's spec, config `world`."""

    seed: int
    n_entities: int  # entities of the facts domain, 3 facts each
    train_docs: int  # per domain
    valid_docs: int  # per domain, held out for domain losses
    sft_examples: int  # per task
    eval_examples: int  # per task (fact_qa is capped by its eval entities x 3, arith_mc by its 392 problems - sft_examples)
    sft_entities: int | None = None  # fact_qa's SFT entities (None: half of them); the others are its eval split
    qa_entities: int = 0  # of the SFT entities, the first N also have their facts as Q/A sentences in the facts text

    @property
    def n_sft_entities(self) -> int:
        return self.n_entities // 2 if self.sft_entities is None else self.sft_entities


@dataclass(frozen=True)
class Domain(Settings):
    """A pre-training domain, an entry of config `domains` (lmforecast/data/sources.py): one source of
    documents (`world`, `files` or `dataset`) and its held-out text (`heldout_docs` or `eval_files`)."""

    world: str | None = None  # a domain of the synthetic world (its valid split is the held-out text)
    files: tuple[str, ...] | None = None  # paths or globs: text, JSONL (.gz/.zst), Parquet
    dataset: str | None = None  # a save_to_disk directory, a local HF dataset directory, or a hub id
    split: str = "train"  # dataset only
    format: str | None = None  # text | jsonl | parquet (default: from each file's name)
    text_field: str = "text"  # JSONL field, Parquet column or dataset column of the text
    document: str = "file"  # text files: one document per file or per line
    heldout_docs: int | None = None  # the first N documents, taken out of the training data
    eval_files: tuple[str, ...] | None = None  # or a separate held-out set, read like `files`
    chunk_files: int | None = None  # files: tokenize in jobs of this many files each, then concatenate


@dataclass(frozen=True)
class Tokenizer(Settings):
    """The tokenizer rule's spec: config `tokenizer` and training.seq_len, saved as the tokenizer's model_max_length.

    Either a byte-level BPE trained on the domains' training documents (vocab_size), or a Hugging
    Face tokenizer directory (path), with the sentinels appended when it lacks them.
    """

    sentinels: int  # span corruption's sentinel tokens, appended after the BPE
    seq_len: int
    vocab_size: int | None = None  # the BPE's, EOS included
    path: str | None = None  # a Hugging Face tokenizer directory used instead of training one
    sample_docs: int | None = None  # trained BPE: the first N training documents of each domain (None: all)


@dataclass(frozen=True)
class Size(Settings):
    """A model size, an entry of config `sizes` (the model's shape; train/model.py's ModelConfig adds the rest)."""

    d_model: int
    n_layers: int
    n_heads: int
    ffn_ratio: float = 3.0  # the SwiGLU MLP's width / d_model

    @property
    def intermediate_size(self) -> int:
        return int(round(self.ffn_ratio * self.d_model))

    @property
    def n_params_nonembed(self) -> int:
        """Non-embedding parameters: per layer attention (4 d^2), the SwiGLU MLP (3 d f) and two RMSNorm
        weights, and the final norm. The count does not depend on the vocabulary (Kaplan et al. 2020)."""
        d, f = self.d_model, self.intermediate_size
        return self.n_layers * (4 * d * d + 3 * d * f + 2 * d) + d


@dataclass(frozen=True)
class Run(Settings):
    """A run resolved (config.run_spec): its size and mixture looked up, its budget in tokens and steps."""

    name: str
    size: Size
    size_name: str
    mixture: dict  # domain -> sampling weight
    mixture_name: str
    objective: str  # clm | prefix_lm | span_corruption | ul2 (lmforecast/train/objectives.py)
    lr: float  # peak learning rate
    seed: int
    tokens: int  # the training budget
    steps_total: int
    tokens_per_param: float | None = None  # the budget as the config gave it, if so


@dataclass(frozen=True)
class Training(Settings):
    """Config `training`, shared by every run."""

    seq_len: int
    batch_size: int
    schedule: str  # cosine | wsd
    warmup_frac: float
    min_lr_frac: float
    weight_decay: float
    grad_clip: float
    checkpoints: int  # per run, evenly spaced
    log_every: int
    decay_frac: float | None = None  # wsd only (required by it): the decay's share of the steps
    decay_shape: str | None = None  # wsd only (required by it): linear | 1-sqrt
    checkpoints_per_segment: int = 1  # checkpoints per pretrain job and per evaluate job
    precision: str = "fp32"  # fp32 | bf16 (accelerate's autocast)
    parallel: str = "none"  # none | ddp | fsdp: data-parallel over the processes the pretrain rule launches (fsdp: sharded)
    micro_batch_size: int | None = None  # rows per process per forward/backward (None: batch_size / processes)
    compile: bool = False  # torch.compile the model (faster steps on a GPU, after a compile of seconds to minutes)

    @property
    def tokens_per_step(self) -> int:
        return self.batch_size * self.seq_len


HOW_SPLIT = ("parallel", "micro_batch_size", "compile")  # how a step is computed, not what it computes


@dataclass(frozen=True)
class Pretrain:
    """The pretrain rule's spec {run, training}, and the hash that its checkpoints' manifests carry.

    The hash is of the spec as given, not of these settings: filling in defaults would change the
    hash of every checkpoint written before. Left out of it: the default precision, so checkpoints
    written before training.precision existed still resume, and how checkpoints are grouped into
    jobs (checkpoints_per_segment) and how a step's batch is split over processes and micro-batches
    (HOW_SPLIT), which do not change the weights (beyond float rounding): a checkpoint resumes
    under another world size.
    """

    run: Run
    training: Training
    config_hash: str

    @classmethod
    def from_dict(cls, d: dict):
        _check_keys(cls, d, derived=("config_hash",))
        training = {
            k: v
            for k, v in d["training"].items()
            if k not in ("checkpoints_per_segment", *HOW_SPLIT) and not (k == "precision" and v == default(Training, "precision"))
        }
        return cls(
            Run.from_dict(d["run"]), Training.from_dict(d["training"]), config_hash({"run": d["run"], "training": training})
        )


@dataclass(frozen=True)
class Evaluation(Settings):
    """The evaluate rule's spec: config `evaluation` (less task_data, rule task_data's) and world.valid_docs."""

    tasks: list
    shots: list  # numbers of demonstrations, each scored
    examples_per_task: int
    fewshot_seed: int
    domain_docs: (
        int | None
    )  # held-out documents per domain for the domain losses (world.valid_docs; None with config `domains`: all)
    fewshot_examples_per_task: int | None = None  # k-shot prompts (k > 0) on the first N examples only (None: all)
    prompts: dict = field(default_factory=dict)  # task -> the prompt templates evaluated (a task left out: all)
    precision: str = "fp32"  # fp32 | bf16: the model's weights while scoring (on the GPU when there is one)

    def prompts_for(self, task: str, templates: list) -> list:
        """The names of the prompts evaluated for `task`, of its `templates`."""
        return self.prompts.get(task, templates)


@dataclass(frozen=True)
class TaskData(Settings):
    """Rule task_data's spec: a dataset task's local files (an entry of evaluation.task_data)."""

    files: dict | str  # split -> JSONL or Parquet file, or "hub": the dataset the task's YAML names


@dataclass(frozen=True)
class Sft(Settings):
    """Config `sft`: which checkpoints are fine-tuned, how, and on what."""

    tasks: list
    checkpoints: str | int  # last | all | k (every k-th checkpoint counted back from the last)
    methods: list  # full | lora | last_layers
    multitask: bool  # also fine-tune on the union of the tasks' SFT splits
    steps: int
    batch_size: int
    lr: float
    seed: int
    examples_per_task: int  # eval examples scored per task
    lora_r: int | None = None  # lora only (required by it)
    lora_alpha: float | None = None  # lora only (required by it)
    last_layers: int | None = None  # last_layers only (required by it): the blocks trained
    prompt: str | dict | None = None  # a template name, {task: name}, or None: each task's first template
    data: tuple["SftData", ...] = ()  # instruction data from local files
    weights: dict = field(default_factory=dict)  # task or data name -> its weight in the multi-task mixture (default 1)
    precision: str = "fp32"  # fp32 | bf16: autocast while fine-tuning, bf16 weights while scoring


@dataclass(frozen=True)
class SftData(Settings):
    """An entry of sft.data: instruction data, a local JSONL or Parquet file (prompt/completion, or chat messages)."""

    name: str  # its sft_data label "data:NAME" and its key in sft.weights
    path: str


@dataclass(frozen=True)
class External(Settings):
    """An entry of config `external`: a published model (HF directory) or a suite's checkpoints, a run of the tables.

    One model: `path` (and the `step` its rows carry); a suite's checkpoints: `steps` {step: directory},
    the steps of one run. With `tokens_per_step` the checkpoints table has tokens (step x tokens_per_step)
    and FLOPs; without, nulls. `mixture` names its family in the fits (runs of one mixture and objective).
    """

    name: str  # the run name of its rows
    path: str | None = None
    step: int = 0  # the step its rows carry (with `path`)
    steps: dict | None = None  # step -> directory: a suite's checkpoints
    tokens_per_step: int | None = None  # training tokens per step (Pythia: 1024 x 2048)
    mixture: str = "external"  # its pre-training data, the family it belongs to in the fits
    objective: str = "clm"
    seed: int = 0

    @property
    def checkpoints(self) -> dict:
        """step -> model directory, in step order."""
        steps = {self.step: self.path} if self.steps is None else {int(k): v for k, v in self.steps.items()}
        return dict(sorted(steps.items()))

    @property
    def last_step(self) -> int:
        return max(self.checkpoints)


def default(cls, name: str):
    """The default of field `name` of settings `cls`."""
    return next(f.default for f in fields(cls) if f.name == name)
