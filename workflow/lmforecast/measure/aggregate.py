"""Per-checkpoint outputs -> the tables of results/tables/."""

import json

import pyarrow as pa

from lmforecast import tables
from lmforecast.io import read_json
from lmforecast.settings import Run
from lmforecast.train.checkpoint import verify_file
from lmforecast.train.loop import TRAINER_STATE


def trainer_state(directory) -> dict:
    """A checkpoint's trainer state, checked against its manifest first (an edited file is refused, named)."""
    return read_json(verify_file(directory, TRAINER_STATE))


def checkpoints_table(checkpoint_dirs, external=()) -> pa.Table:
    """One row per trained checkpoint, and per external model ({run, step}): its training is unknown, so nulls."""
    rows = [trainer_state(d) for d in checkpoint_dirs]
    for r in rows:
        r["tokens_by_domain"] = json.dumps(r["tokens_per_domain"], sort_keys=True)
    unknown = {f.name: None for f in tables.SCHEMAS["checkpoints"]}
    rows += [{**unknown, "run": e["run"], "step": e["step"]} for e in external]
    rows.sort(key=lambda r: (r["run"], r["step"]))
    return tables.to_table("checkpoints", tables.rows_to_columns(rows, "checkpoints"))


def runs_table(runs: list[Run], checkpoint_dirs) -> pa.Table:
    """One row per run: its configuration and exact parameter counts (from its checkpoints)."""
    counts = {}
    for d in checkpoint_dirs:
        state = trainer_state(d)
        counts[state["run"]] = state
    rows = [
        {
            "run": r.name,
            "n_params": counts[r.name]["n_params"],
            "n_params_nonembed": counts[r.name]["n_params_nonembed"],
            "objective": r.objective,
            "mixture": r.mixture_name,
            "seed": r.seed,
            "lr": float(r.lr),
            "tokens_planned": r.tokens,
            "size": r.size_name,
            "d_model": r.size.d_model,
            "n_layers": r.size.n_layers,
        }
        for r in sorted(runs, key=lambda r: r.name)
    ]
    return tables.to_table("runs", tables.rows_to_columns(rows, "runs"))


def concat(name: str, paths) -> pa.Table:
    parts = [tables.read(name, p).select(tables.SCHEMAS[name].names) for p in sorted(map(str, paths))]
    if not parts:
        return tables.SCHEMAS[name].empty_table()
    return pa.concat_tables(parts)


def aggregate(runs: list[Run], checkpoint_dirs, per_checkpoint: dict, outputs: dict, external=()):
    """per_checkpoint: table name -> list of parquet files; outputs: table name -> path; external: [{run, step}]."""
    built = {"runs": runs_table(runs, checkpoint_dirs), "checkpoints": checkpoints_table(checkpoint_dirs, external)}
    for name, paths in per_checkpoint.items():
        built[name] = concat(name, paths)
    for name, path in outputs.items():
        tables.write(built[name], path)
