"""The Parquet tables of results/tables/ (long format) and their Arrow schemas.

Each schema lists a table's required columns first (what every source of tables writes:
rule aggregate, rule import_tables), then its extra columns, listed here too so that every
writer produces the same types. `write` checks and casts before writing, and
writes atomically.

checkpoints.tokens_by_domain is the JSON object {domain: training tokens drawn from it so
far}: one string column keeps the table one row per checkpoint whatever the domains
(decode with polars' str.json_decode). domain_losses.span_corruption_loss is the mean
target loss (nats per token) of a fixed span corruption of the same held-out text.
example_scores.ppl_correct is the cloze perplexity of the gold answer, exp(-logprob_correct /
tokens_correct), per token of the answer as scored after its context.
"""

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


def write(table: pa.Table, path):
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def read(name: str, path) -> pa.Table:
    table = pq.read_table(path)
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
