"""Per-checkpoint outputs -> the tables of results/tables/.

External models (config `external`) are runs too: their parameters counted from the model's
config (no weights read), tokens and FLOPs where the config gives tokens_per_step, their
training loss and learning rate unknown (null).
"""

import json

import pyarrow as pa

from lmforecast import tables
from lmforecast.io import read_json
from lmforecast.settings import External, Run
from lmforecast.train.checkpoint import verify_file
from lmforecast.train.loop import LOSS_HISTORY, TRAINER_STATE


def trainer_state(directory) -> dict:
    """A checkpoint's trainer state, checked against its manifest first (an edited file is refused, named)."""
    return read_json(verify_file(directory, TRAINER_STATE))


def count_parameters(directory) -> dict:
    """An HF model directory's parameter counts and shape, from its config.json alone (a model on the meta device).

    n_params counts tied weights once (as ours do); n_params_nonembed leaves out the input embedding and
    an untied output embedding (Kaplan et al. 2020), position embeddings (GPT-2's) are counted in it.
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(directory)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    embedding, head = model.get_input_embeddings().weight, model.get_output_embeddings()
    total = sum(p.numel() for p in model.parameters())  # parameters() yields a tied weight once
    embed = embedding.numel() + (head.weight.numel() if head is not None and head.weight is not embedding else 0)
    text = config.get_text_config()
    return {
        "n_params": total,
        "n_params_nonembed": total - embed,
        "d_model": text.hidden_size,
        "n_layers": text.num_hidden_layers,
        "vocab_size": embedding.shape[0],
        "seq_len": getattr(text, "max_position_embeddings", None),
    }


def external_flops_per_token(counts: dict) -> float:
    """train/model.py's flops_per_token for an external model: 6 x (non-embedding + output head) + 12 L d T."""
    matmul = counts["n_params_nonembed"] + counts["vocab_size"] * counts["d_model"]
    return 6.0 * matmul + 12.0 * counts["n_layers"] * counts["d_model"] * (counts["seq_len"] or 0)


def _external_counts(external: list[External]) -> dict:
    return {e.name: count_parameters(e.checkpoints[e.last_step]) for e in external}


def checkpoints_table(checkpoint_dirs, external=(), counts=None) -> pa.Table:
    """One row per trained checkpoint, and per external checkpoint: tokens and FLOPs if its tokens_per_step is given."""
    rows = [trainer_state(d) for d in checkpoint_dirs]
    for r in rows:
        r["tokens_by_domain"] = json.dumps(r["tokens_per_domain"], sort_keys=True)
    unknown = {f.name: None for f in tables.SCHEMAS["checkpoints"]}
    counts = _external_counts(external) if counts is None else counts
    for e in external:
        for step in e.checkpoints:
            tokens = None if e.tokens_per_step is None else step * e.tokens_per_step
            flops = None if tokens is None else external_flops_per_token(counts[e.name]) * tokens
            rows.append({**unknown, "run": e.name, "step": step, "tokens": tokens, "flops": flops})
    rows.sort(key=lambda r: (r["run"], r["step"]))
    return tables.to_table("checkpoints", tables.rows_to_columns(rows, "checkpoints"))


def training_loss_table(checkpoint_dirs) -> pa.Table:
    """One row per optimizer step of every trained run, from its checkpoints' loss histories.

    Each checkpoint keeps the steps since the previous one, so a run's checkpoints together hold every
    step from 1 to its last: a step held twice or missing (a checkpoint left out) is refused, named.
    """
    rows, source = [], {}
    for d in checkpoint_dirs:
        state = trainer_state(d)
        history = state.get(LOSS_HISTORY)
        if history is None:
            raise ValueError(
                f"{d}/{TRAINER_STATE}: no {LOSS_HISTORY}; expected a checkpoint of the current trainer, rerun its segment"
            )
        for i, loss in enumerate(history["loss"]):
            step = history["first_step"] + i
            key = (state["run"], step)
            if key in source:
                raise ValueError(f"run {key[0]!r} step {step}: in the loss histories of both {source[key]} and {d}")
            source[key] = d
            rows.append({"run": state["run"], "step": step, "loss": float(loss)})
    rows.sort(key=lambda r: (r["run"], r["step"]))
    last = {}
    for r in rows:
        expected = last.get(r["run"], 0) + 1
        if r["step"] != expected:
            raise ValueError(
                f"run {r['run']!r}: loss histories lack steps {expected}..{r['step'] - 1}; expected every checkpoint of the run"
            )
        last[r["run"]] = r["step"]
    return tables.to_table("training_loss", tables.rows_to_columns(rows, "training_loss"))


def external_runs_rows(external: list[External], counts: dict) -> list[dict]:
    """runs rows of the external models (lr unknown: null; tokens_planned: the last checkpoint's tokens, if known)."""
    return [
        {
            "run": e.name,
            "n_params": counts[e.name]["n_params"],
            "n_params_nonembed": counts[e.name]["n_params_nonembed"],
            "objective": e.objective,
            "mixture": e.mixture,
            "seed": e.seed,
            "lr": None,
            "tokens_planned": None if e.tokens_per_step is None else e.last_step * e.tokens_per_step,
            "size": e.name,
            "d_model": counts[e.name]["d_model"],
            "n_layers": counts[e.name]["n_layers"],
        }
        for e in external
    ]


def runs_table(runs: list[Run], checkpoint_dirs, external=(), external_counts=None) -> pa.Table:
    """One row per run: its configuration and exact parameter counts (from its checkpoints); external models after."""
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
    rows += external_runs_rows(external, _external_counts(external) if external_counts is None else external_counts)
    rows.sort(key=lambda r: r["run"])
    return tables.to_table("runs", tables.rows_to_columns(rows, "runs"))


def concat(name: str, paths) -> pa.Table:
    parts = [tables.read(name, p).select(tables.SCHEMAS[name].names) for p in sorted(map(str, paths))]
    if not parts:
        return tables.SCHEMAS[name].empty_table()
    return pa.concat_tables(parts)


def aggregate(runs: list[Run], checkpoint_dirs, per_checkpoint: dict, outputs: dict, external: list[External] = ()):
    """per_checkpoint: table name -> list of parquet files; outputs: table name -> path; external: config `external`."""
    counts = _external_counts(external)
    built = {
        "runs": runs_table(runs, checkpoint_dirs, external, counts),
        "checkpoints": checkpoints_table(checkpoint_dirs, external, counts),
        "training_loss": training_loss_table(checkpoint_dirs),
    }
    for name, paths in per_checkpoint.items():
        built[name] = concat(name, paths)
    for name, path in outputs.items():
        tables.write(built[name], path)
