"""The data the scaling chains run on: one row per checkpoint, built from the tables.

`checkpoint_frame` gives compute, tokens, parameters, the pre-training loss, each domain's loss
and, per task, the score, its chance level, its number of examples (null: unknown) and the task loss (bits per
byte of the correct answer), as columns `loss:<domain>`, `score:<task>`, `chance:<task>`, `n:<task>`, `bpb:<task>`.

"Pre-training loss" is the mean of the domain losses (nats per token) over domains, i.e.
the loss on a fixed uniform validation mixture, comparable across training mixtures.
"""

import numpy as np
import polars as pl

from lmforecast.tables import first_prompt


def pretraining_loss(domain_losses: pl.DataFrame) -> pl.DataFrame:
    return domain_losses.group_by("run", "step").agg(pl.col("loss").mean().alias("loss"))


FAMILY_KEYS = ("mixture", "objective", "lr")


def family_parts() -> dict:
    """Each family key's text in a family's name, as expressions over a frame of runs (`peak_lr`: runs.lr, the run's
    peak learning rate; checkpoints.lr is the rate at that step)."""
    lr = pl.when(pl.col("peak_lr").is_null()).then(pl.lit("lr=?")).otherwise(pl.format("lr={}", pl.col("peak_lr")))
    return {"mixture": pl.col("mixture"), "objective": pl.col("objective"), "lr": lr}


def family_name(family_keys) -> pl.Expr:
    """A run's family, e.g. 'uniform/clm/lr=0.003': its family keys' texts (family_parts) joined."""
    parts = family_parts()
    return pl.concat_str([parts[k] for k in family_keys], separator="/").alias("family")


def checkpoint_points(
    runs: pl.DataFrame, checkpoints: pl.DataFrame, domain_losses: pl.DataFrame, family_keys=FAMILY_KEYS, how="inner"
) -> pl.DataFrame:
    """One row per checkpoint: compute, pre-training loss and family.

    A family is the runs of one recipe at different scales: by default same mixture, objective and
    learning rate (a run at another learning rate is not on the same scaling curve); a ladder that
    tunes the learning rate per size leaves lr out of `family_keys`. `how="left"` keeps the checkpoints
    without a loss (an import of task scores alone), with a null loss.
    """
    return (
        checkpoints.join(pretraining_loss(domain_losses), on=["run", "step"], how=how)
        .join(runs.select("run", "mixture", "objective", pl.col("lr").alias("peak_lr")), on="run")
        .with_columns(family_name(family_keys))
        .sort("run", "step")
    )  # a join keeps no order: sorted, so that figures and their data are deterministic


def select_scores(task_scores: pl.DataFrame, cfg, metric: str | None = None) -> pl.DataFrame:
    """The score a chain predicts (`cfg`: ScalingSettings): one metric, shots and prompt (default: each task's first prompt)."""
    scores = task_scores.filter((pl.col("metric") == (metric or cfg.metric)) & (pl.col("shots") == cfg.shots))
    if cfg.tasks is not None:
        scores = scores.filter(pl.col("task").is_in(cfg.tasks))
    return first_prompt(scores, cfg.prompt)


def _wide(long: pl.DataFrame, on: str, values: str, prefix: str) -> pl.DataFrame:
    """One column `prefix:<key>` per value of `on`, one row per checkpoint."""
    return long.pivot(on=on, index=["run", "step"], values=values).rename(
        lambda c: c if c in ("run", "step") else f"{prefix}:{c}"
    )


def checkpoint_frame(tables: dict, cfg) -> pl.DataFrame:
    """One row per checkpoint with every column a predictor may use (see the module docstring)."""
    points = checkpoint_points(tables["runs"], tables["checkpoints"], tables["domain_losses"], cfg.family_keys, how="left")
    points = points.join(tables["runs"].select("run", "n_params"), on="run")
    scores = select_scores(tables["task_scores"], cfg)
    if not scores.height:  # an empty back-test would pass for a result
        ts = tables["task_scores"]
        present = ", ".join(
            f"{m} ({s}-shot)" for m, s in ts.select("metric", "shots").unique().sort("metric", "shots").iter_rows()
        )
        raise ValueError(
            f"fit.scaling: no task_scores rows with metric {cfg.metric!r} at {cfg.shots} shots"
            + (f" for tasks {list(cfg.tasks)}" if cfg.tasks is not None else "")
            + "; "
            f"expected metric and shots from those present: {present or 'none (task_scores is empty)'}"
        )
    wide = [
        _wide(tables["domain_losses"], "domain", "loss", "loss"),
        _wide(scores, "task", "value", "score"),
        _wide(scores, "task", "chance", "chance"),
        _wide(scores, "task", "n", "n"),
    ]
    bpb = select_scores(tables["task_scores"], cfg, metric="bits_per_byte")
    if bpb.height:
        wide.append(_wide(bpb, "task", "value", "bpb"))
    frame = points
    for part in wide:
        frame = frame.join(part, on=["run", "step"], how="left")
    final = pl.col("step").max().over("run")
    return frame.with_columns((pl.col("step") / final).alias("frac"), (pl.col("step") == final).alias("is_final")).sort(
        "run", "step"
    )


def planned_frame(planned, family_keys) -> pl.DataFrame:
    """The final checkpoint each planned run (fit.scaling.forecast: PlannedRun settings) would end on: its family,
    parameters, tokens and compute (6 N D where not given), with no loss or score; `planned` marks it."""
    runs = pl.DataFrame(
        [
            {
                "run": p.name,
                "mixture": p.mixture,
                "objective": p.objective,
                "peak_lr": p.lr,
                "n_params": float(p.n_params),
                "tokens": float(p.tokens),
                "flops": float(6.0 * p.n_params * p.tokens if p.flops is None else p.flops),
            }
            for p in planned
        ],
        schema={"run": pl.String, "mixture": pl.String, "objective": pl.String, "peak_lr": pl.Float64}
        | {k: pl.Float64 for k in ("n_params", "tokens", "flops")},
    )
    return runs.with_columns(
        family_name(family_keys),
        is_final=pl.lit(True),
        frac=pl.lit(1.0),
        planned=pl.lit(True),
    )


def planned_mask(held: pl.DataFrame) -> np.ndarray:
    """Which rows of a family's held rows are planned runs' (planned_frame), not held-out runs'."""
    if "planned" not in held.columns:
        return np.zeros(held.height, bool)
    return held["planned"].fill_null(False).to_numpy()


def held_normal(rng, n_draws: int, held: pl.DataFrame) -> np.ndarray:
    """Standard normal draws (n_draws x held rows) for an interval's scatter: the held-out runs' first, as drawn
    before forecasts existed, then the planned runs' (last in `held`), so that a forecast leaves the back-test as it
    was."""
    n_planned = int(planned_mask(held).sum())
    drawn = rng.normal(0.0, 1.0, (n_draws, held.height - n_planned))
    return np.hstack([drawn, rng.normal(0.0, 1.0, (n_draws, n_planned))])


def tasks_of(frame: pl.DataFrame) -> list[str]:
    return sorted(c.split(":", 1)[1] for c in frame.columns if c.startswith("score:"))


def domains_of(frame: pl.DataFrame) -> list[str]:
    return sorted(c.split(":", 1)[1] for c in frame.columns if c.startswith("loss:"))
