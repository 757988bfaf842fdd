"""The Parquet tables of results/tables/ (long format) and their Arrow schemas.

Each schema lists a table's required columns first (what every source of tables writes:
rule aggregate, rule import_tables), then its extra columns, listed here too so that every
writer produces the same types. `write` checks and casts before writing, and
writes atomically.

checkpoints.tokens_by_domain is the JSON object {domain: training tokens drawn from it so
far}: one string column keeps the table one row per checkpoint whatever the domains
(decode with polars' str.json_decode). domain_losses.span_corruption_loss is the mean
target loss (nats per token) of a fixed span corruption of the same held-out text.
training_loss is every optimizer step's loss (the mean over the step's global batch, nats per token) of
every run trained here, step k the k-th step (checkpoints.step counts the same way); external models
and imported runs have no rows.
example_scores.ppl_correct is the cloze perplexity of the gold answer, exp(-logprob_correct /
tokens_correct), per token of the answer as scored after its context.

Every table file has its SHA-256 beside it (`<name>.parquet.sha256`, in `sha256sum`'s format, so
`sha256sum -c` checks it too), written with it; `read` verifies it first, so an altered,
truncated or unfinished table is named with the rule that makes it instead of being read, and
`stale` lets the workflow find such a file when it is parsed and have its rule rerun.
"""

import hashlib
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from lmforecast.io import atomic_path

S, I, F, B = pa.string(), pa.int64(), pa.float64(), pa.bool_()  # noqa: E741 (I: int64, beside S, F, B)

SCHEMAS = {
    "runs": pa.schema(
        [
            ("run", S),
            ("n_params", I),
            ("n_params_nonembed", I),
            ("objective", S),
            ("mixture", S),
            ("seed", I),
            ("lr", F),
            ("tokens_planned", I),
            ("size", S),
            ("d_model", I),
            ("n_layers", I),
        ]
    ),
    "checkpoints": pa.schema(
        [
            ("run", S),
            ("step", I),
            ("tokens", I),
            ("flops", F),
            ("train_loss", F),
            ("lr", F),
            ("tokens_by_domain", S),
        ]
    ),
    "training_loss": pa.schema(
        [
            ("run", S),
            ("step", I),
            ("loss", F),
        ]
    ),
    "domain_losses": pa.schema(
        [
            ("run", S),
            ("step", I),
            ("domain", S),
            ("loss", F),
            ("bits_per_byte", F),
            ("tokens", I),
            ("bytes", I),
            ("span_corruption_loss", F),
        ]
    ),
    "task_scores": pa.schema(
        [
            ("run", S),
            ("step", I),
            ("task", S),
            ("prompt", S),
            ("shots", I),
            ("metric", S),
            ("value", F),
            ("n", I),
            ("chance", F),
        ]
    ),
    "example_scores": pa.schema(
        [
            ("run", S),
            ("step", I),
            ("task", S),
            ("prompt", S),
            ("shots", I),
            ("example", S),
            ("correct", B),
            ("logprob_correct", F),
            ("prob_correct_norm", F),
            ("correct_norm", B),
            ("ppl_correct", F),
            ("tokens_correct", I),
        ]
    ),
    "sft_scores": pa.schema(
        [
            ("run", S),
            ("step", I),
            ("task", S),
            ("sft_method", S),
            ("sft_data", S),
            ("metric", S),
            ("value", F),
            ("n", I),
        ]
    ),
    # Per-example results after SFT (the SELECT proposal correlates them with the zero-shot ones).
    "sft_example_scores": pa.schema(
        [
            ("run", S),
            ("step", I),
            ("task", S),
            ("sft_method", S),
            ("sft_data", S),
            ("example", S),
            ("correct", B),
            ("logprob_correct", F),
            ("prob_correct_norm", F),
            ("correct_norm", B),
        ]
    ),
}


def to_table(name: str, columns: dict) -> pa.Table:
    """Columns (name -> list) as an Arrow table of the named schema; names the missing ones."""
    schema = SCHEMAS[name]
    missing = [f.name for f in schema if f.name not in columns]
    if missing:
        raise ValueError(f"table {name}: missing columns {missing}")
    return pa.table({f.name: pa.array(columns[f.name], type=f.type) for f in schema}, schema=schema)


class TableError(ValueError):
    pass


def checksum_path(path) -> Path:
    return Path(f"{path}.sha256")


def sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def maker(path) -> str:
    """The rule that makes a table file (by its place under results/), for the messages."""
    parts = Path(path).parts
    if "evals" in parts:
        return "evaluate"
    if "sft" in parts:
        return "sft"
    return "aggregate (import_tables in analysis-only mode)"


def write(table: pa.Table, path):
    """The table under a temporary name, its checksum beside the target, then the table renamed into
    place: a table under its name always has its checksum (a reader, or a dry run that checks the
    tables while a job writes one, never sees it without); a writer killed in between leaves only
    a checksum, and Snakemake reruns the job whose output is missing."""
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
        with atomic_path(checksum_path(path)) as tmp_sum:
            tmp_sum.write_text(f"{sha256(tmp)}  {Path(path).name}\n")


def stale(path) -> str | None:
    """Why the table file at `path` cannot be trusted (no checksum beside it, or another), or None."""
    path = Path(path)
    check = checksum_path(path)
    rerun = f"rerun rule {maker(path)}"
    if not check.is_file():
        return f"{path}: no checksum beside it ({check.name}); unfinished or not written by lmforecast: {rerun}"
    expected = check.read_text().split(maxsplit=1)[0] if check.stat().st_size else ""
    if sha256(path) != expected:
        return f"{path}: checksum mismatch ({check.name}); the table was altered or truncated after it was written: {rerun}"
    return None


def read(name: str, path) -> pa.Table:
    problem = stale(path)
    if problem:
        raise TableError(problem)
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as e:
        raise TableError(f"{path}: not a readable Parquet table ({e}); rerun rule {maker(path)}") from e
    expected = SCHEMAS[name]
    wrong = [f.name for f in expected if f.name not in table.column_names or table.schema.field(f.name).type != f.type]
    if wrong:
        raise ValueError(f"{path}: columns {wrong} missing or not of the {name} schema's types")
    return table


def rows_to_columns(rows: list[dict], name: str) -> dict:
    return {f.name: [r[f.name] for r in rows] for f in SCHEMAS[name]}


def first_prompt(scores, prompt=None):
    """Rows (of a polars task_scores or example_scores frame) of one prompt per task.

    `prompt`: a name (for every task), a mapping {task: name}, or None. A task without a named
    prompt gets its first, the first in the table: the first template of the task's YAML
    (evaluation writes both tables in request order), so every fit defaults to the same one.
    """
    import polars as pl  # here: the jobs that write tables do not need polars, the fits that call this have it

    if isinstance(prompt, str):
        return scores.filter(pl.col("prompt") == prompt)
    chosen = scores.unique(subset="task", keep="first", maintain_order=True).select("task", "prompt")
    if prompt:
        chosen = chosen.with_columns(pl.col("task").replace_strict(prompt, default=pl.col("prompt")).alias("prompt"))
    return scores.join(chosen, on=["task", "prompt"])
