# Config access and run/step enumeration. The config is validated here, when the
# workflow is parsed, so a bad config stops before any job with the field named.
import json
import os
import re

from lmforecast import config as lmconfig
from lmforecast.data.world import DOMAINS
from lmforecast.fits.registry import registry
from lmforecast.measure.tasks import resolve_task
from lmforecast.settings import External, Training
from lmforecast.tables import SCHEMAS

# Snakemake's YAML reader keeps the last of duplicate keys: read its config files again, strictly.
for _path in workflow.configfiles:
    lmconfig.read_yaml(_path)
# Snakemake merges the --configfile files onto the Snakefile's `configfile:` (the embedded default).
_overrides = list(workflow.overwrite_configfiles)
CONFIG_FILES = [f for f in workflow.configfiles if f not in _overrides] + _overrides
_filled = lmconfig.filled_in(CONFIG_FILES) if len(CONFIG_FILES) > 1 else []
if _filled:
    lmconfig.warn(
        f"keys absent from {CONFIG_FILES[-1]}'s sections, taken from {', '.join(map(str, CONFIG_FILES[:-1]))}: "
        + ", ".join(_filled)
    )
# Sizes are checked against the pretrain job's memory as this run sets it (a profile's set-resources).
_pretrain_mem = workflow.resource_settings.overwrite_resources.get("pretrain", {}).get("mem_mb")
try:  # a snakemake Resource (its value: a number, or a function of the job, which is not known here)
    _pretrain_mem = getattr(_pretrain_mem, "value", _pretrain_mem)
except Exception:
    _pretrain_mem = None
if isinstance(_pretrain_mem, (int, float)):
    lmconfig.set_pretrain_mem_mb(_pretrain_mem)
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
    # Tasks by reference (a shipped task, a YAML path, an lm-eval task name), resolved: name -> TaskRef.
    TASK_REFS = lmconfig.task_refs(config)
    EVAL_TASKS = list(TASK_REFS)
    # External (published) models: HF model directories, one model or a suite's checkpoints as the steps of
    # one run, evaluated and fine-tuned by the same rules as trained checkpoints (run = name).
    EXTERNAL = {e["name"]: External.from_dict(e) for e in config.get("external", [])}
    SFT_TASKS = lmconfig.sft_task_names(config)
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
    return [(name, step) for name, e in EXTERNAL.items() for step in e.checkpoints]


def external_segments():
    """One evaluate job per external run (all its checkpoints in one process), named by its last step."""
    return [(name, e.last_step) for name, e in EXTERNAL.items()]


def evaluated_segment(wildcards):
    """Rule evaluate's input: a segment's directory, or an external run's model directories."""
    if wildcards.run in EXTERNAL:
        return list(EXTERNAL[wildcards.run].checkpoints.values())
    return segment_dir(wildcards.run, wildcards.step)


def evaluated_checkpoints(wildcards):
    """The models rule evaluate scores: every checkpoint of the segment, or of the external run."""
    if wildcards.run in EXTERNAL:
        return " ".join(EXTERNAL[wildcards.run].checkpoints.values())
    return " ".join(checkpoint_dir(wildcards.run, s) for s in SEGMENTS[wildcards.run][int(wildcards.step)])


def external_flags(wildcards):
    """Rule evaluate: an external run's name and the steps of its directories, in order."""
    e = EXTERNAL.get(wildcards.run)
    return f"--external-run {e.name} --external-step {' '.join(map(str, e.checkpoints))}" if e else ""


def sft_external_flags(wildcards):
    """Rule sft: an external run's name and the step of the checkpoint it fine-tunes."""
    return f"--external-run {wildcards.run} --external-step {wildcards.step}" if wildcards.run in EXTERNAL else ""


def sft_checkpoints():
    """last | all | k: every k-th checkpoint counted back from the last, so the last is always fine-tuned;
    of the trained runs and the external ones alike."""
    which = config["sft"]["checkpoints"]
    every = {"last": None, "all": 1}.get(which, which)
    runs = {**STEPS, **{name: list(e.checkpoints) for name, e in EXTERNAL.items()}}
    return [(run, step) for run, steps in runs.items() for step in (steps[::-1][::every] if every else steps[-1:])]


def sft_model_dir(run, step):
    """The directory rule sft fine-tunes: a trained checkpoint's, or an external checkpoint's."""
    return EXTERNAL[run].checkpoints[int(step)] if run in EXTERNAL else checkpoint_dir(run, step)


def task_specs(tasks):
    # Each task's YAML: shipped in resources/tasks, the user's file, or lm-eval's own (measure/tasks.py resolve_task);
    # named relative to the working directory, so that results stay valid when the checkout moves (Snakemake
    # records input paths).
    return [os.path.relpath(TASK_REFS[t].path) for t in tasks]


def task_examples(tasks):
    # Synthetic tasks come from the world rule; tasks read from files (evaluation.task_data) from rule task_data.
    # (the world rule names its own tasks, evaluated or not)
    refs = [TASK_REFS[t] if t in TASK_REFS else resolve_task(t) for t in tasks]
    return [f"results/world/tasks/{r.name}.jsonl" if r.world else f"results/tasks/{r.name}.jsonl" for r in refs]


DOMAIN_FILES = [f"results/world/domains/{d}.jsonl" for d in DOMAINS]

if not IMPORT:
    from lmforecast.data.sources import file_chunks, source_files

    # The pre-training domains (config `domains`, or the world's four), each read by one tokenize job
    # into results/tokens/{domain}/ (its token store) and results/heldout/{domain}.jsonl (its held-out text).
    DATA_DOMAINS = lmconfig.domains(config)
    DATA_FILES = {name: source_files(lmconfig.Domain.from_dict(d), name) for name, d in DATA_DOMAINS.items()}
    # Domains with chunk_files: their files in chunks, one tokenize_chunk job each (results/token_chunks/{domain}/{i}/).
    TOKEN_CHUNKS = {name: file_chunks(lmconfig.Domain.from_dict(d), name) for name, d in DATA_DOMAINS.items()}
    TOKEN_STORES = [f"results/tokens/{d}" for d in DATA_DOMAINS]
    HELDOUT_FILES = [f"results/heldout/{d}.jsonl" for d in DATA_DOMAINS]

# Produced files are checked when the workflow is parsed: a table whose checksum does not match (or is
# missing), or a checkpoint whose manifest does not match its files (small files hashed, the weights
# by size), is named here and set aside (io.set_aside), so Snakemake reruns the rule that makes it.
# Not by making it older than its inputs: Snakemake ignores a newer input whose checksum it recorded.
def produced_tables():
    files = [table(name) for name in TABLES]
    if not IMPORT:
        evals = all_segments() + external_checkpoints()
        files += [f"results/evals/{r}/step{s}/{n}.parquet" for r, s in evals for n in ("domain_losses", "task_scores", "example_scores")]
        files += [f"results/sft/{r}/step{s}/{m}{x}.parquet" for r, s in sft_checkpoints() for m in SFT_METHODS for x in ("", ".examples")]
    return files


def _set_aside_stale():
    from lmforecast import tables as lmtables
    from lmforecast.io import set_aside
    from lmforecast.train.checkpoint import quick_check

    for path in produced_tables():
        problem = os.path.exists(path) and lmtables.stale(path)
        if problem:
            lmconfig.warn(f"{problem}; set aside as {set_aside(path)}")
    for run, end in [] if IMPORT else all_segments():
        segment = segment_dir(run, end)
        problems = [quick_check(checkpoint_dir(run, step)) for step in SEGMENTS[run][end]] if os.path.isdir(segment) else []
        problem = next((p for p in problems if p), None)
        if problem:
            lmconfig.warn(f"{problem}; its segment is set aside as {set_aside(segment)}, rule pretrain reruns it")


if workflow.is_main_process:  # not again inside each job (a cluster job parses the workflow too)
    _set_aside_stale()
