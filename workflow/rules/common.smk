# Config access and run/step enumeration. The config is validated here, when the
# workflow is parsed, so a bad config stops before any job with the field named.
import json
import os
import re

from lmforecast import config as lmconfig
from lmforecast.data.world import DOMAINS
from lmforecast.fits.registry import registry
from lmforecast.settings import External, Training
from lmforecast.tables import SCHEMAS

lmconfig.validate(config, "config (config/config.yaml and --config overrides)")

# Analysis-only mode: an `import` section replaces training (rules/imports.smk makes the tables).
IMPORT = "import" in config
# The registered fits this config runs (a fit.<name> section each; in analysis-only mode, not those
# that need SFT labels or per-example scores): rules/fit.smk makes a rule for each.
FITS = registry().configured(config, imported=IMPORT)
if IMPORT:
    from lmforecast.measure.imports import ImportDataError, lm_eval_files

    try:  # the files are the import job's inputs: a file that no pattern names stops the workflow here
        IMPORT_FILES = [f["path"] for f in config["import"].get("ladder", {}).get("files", [])] + (
            [path for path, _, _ in lm_eval_files(config["import"]["lm_eval"])] if "lm_eval" in config["import"] else [])
    except ImportDataError as e:
        raise ValueError(f"invalid import section: {e}") from None
else:
    RUNS = {r["name"]: lmconfig.run_spec(config, r["name"]) for r in config["runs"]}
    TRAINING = Training.from_dict(config["training"])
    STEPS = {name: lmconfig.checkpoint_steps(r["tokens"], TRAINING) for name, r in RUNS.items()}
    # Checkpoints grouped into segments, one pretrain job and one evaluate job each: run -> {last step: its steps}.
    SEGMENTS = {name: {seg[-1]: seg for seg in lmconfig.segments(steps, TRAINING)} for name, steps in STEPS.items()}
    SEGMENT_END = {name: {step: end for end, seg in segs.items() for step in seg} for name, segs in SEGMENTS.items()}
    EVAL_TASKS = config["evaluation"]["tasks"]
    # External HF model directories, evaluated by rule evaluate like checkpoints (run = name, one step).
    EXTERNAL = {e["name"]: External.from_dict(e) for e in config.get("external", [])}
    SFT_TASKS = config["sft"]["tasks"]
    SFT_METHODS = config["sft"]["methods"]

    wildcard_constraints:
        run="|".join(re.escape(name) for name in [*RUNS, *EXTERNAL]),
        step=r"\d+",
        method="|".join(SFT_METHODS),


# The tables of results/tables/ (lmforecast/tables.py), made by rule aggregate or rule import_tables.
TABLES = list(SCHEMAS)


def table(name):
    return f"results/tables/{name}.parquet"


def as_json(obj):
    """A config slice as the JSON string a rule passes in `params` (stable key order)."""
    return json.dumps(obj, sort_keys=True)


def segment_dir(run, end):
    """A segment's output: the checkpoint at its last step, with its earlier checkpoints inside as step{k}/."""
    return f"results/checkpoints/{run}/step{end}"


def segment_of(run, step):
    """The directory of the segment that holds the checkpoint at `step`."""
    return segment_dir(run, SEGMENT_END[run][int(step)])


def checkpoint_dir(run, step):
    step = int(step)
    end = SEGMENT_END[run][step]
    return segment_dir(run, end) if step == end else f"{segment_dir(run, end)}/step{step}"


def previous_step(wildcards):
    """Where the segment ending at {step} starts: the previous segment's last step (0 for the first)."""
    ends = list(SEGMENTS[wildcards.run])
    i = ends.index(int(wildcards.step))
    return 0 if i == 0 else ends[i - 1]


def previous_checkpoint(wildcards):
    step = previous_step(wildcards)
    return [] if step == 0 else [segment_dir(wildcards.run, step)]


def save_steps(wildcards):
    """The segment's checkpoints before its last, written inside its directory (none by default)."""
    earlier = SEGMENTS[wildcards.run][int(wildcards.step)][:-1]
    return f"--save-steps {' '.join(map(str, earlier))}" if earlier else ""


def all_checkpoints():
    return [(run, step) for run, steps in STEPS.items() for step in steps]


def all_segments():
    return [(run, end) for run, segs in SEGMENTS.items() for end in segs]


def external_checkpoints():
    return [(name, e.step) for name, e in EXTERNAL.items()]


def evaluated_segment(wildcards):
    """Rule evaluate's input: a segment's directory, or an external model's directory."""
    if wildcards.run in EXTERNAL:
        return EXTERNAL[wildcards.run].path
    return segment_dir(wildcards.run, wildcards.step)


def evaluated_checkpoints(wildcards):
    """The models rule evaluate scores: every checkpoint of the segment, or the external model."""
    if wildcards.run in EXTERNAL:
        return EXTERNAL[wildcards.run].path
    return " ".join(checkpoint_dir(wildcards.run, s) for s in SEGMENTS[wildcards.run][int(wildcards.step)])


def external_flags(wildcards):
    e = EXTERNAL.get(wildcards.run)
    return f"--external-run {e.name} --external-step {e.step}" if e else ""


def sft_checkpoints():
    """last | all | k: every k-th checkpoint counted back from the last, so the last is always fine-tuned."""
    which = config["sft"]["checkpoints"]
    every = {"last": None, "all": 1}.get(which, which)
    return [(run, step) for run, steps in STEPS.items() for step in (steps[::-1][::every] if every else steps[-1:])]


def task_specs(tasks):
    # Task definitions ship with the workflow: found beside the Snakefile, whatever the working directory.
    return [f"{workflow.basedir}/../resources/tasks/{t}.yaml" for t in tasks]


def task_examples(tasks):
    # Synthetic tasks come from the world rule; dataset tasks (arc_easy, hellaswag) from rule task_data.
    return [f"results/tasks/{t}.jsonl" if t in lmconfig.DATASET_TASKS else f"results/world/tasks/{t}.jsonl" for t in tasks]


DOMAIN_FILES = [f"results/world/domains/{d}.jsonl" for d in DOMAINS]

if not IMPORT:
    from lmforecast.data.sources import source_files

    # The pre-training domains (config `domains`, or the world's four), each read by one tokenize job
    # into results/tokens/{domain}/ (its token store) and results/heldout/{domain}.jsonl (its held-out text).
    DATA_DOMAINS = lmconfig.domains(config)
    DATA_FILES = {name: source_files(lmconfig.Domain.from_dict(d), name) for name, d in DATA_DOMAINS.items()}
    TOKEN_STORES = [f"results/tokens/{d}" for d in DATA_DOMAINS]
    HELDOUT_FILES = [f"results/heldout/{d}.jsonl" for d in DATA_DOMAINS]
