"""Pairwise checkpoint selection (Zeng et al. 2025, "Can pre-training indicators reliably predict
fine-tuning outcomes?"): which of two models is better after SFT?

Proxies measured before SFT and a learned comparator are scored on pairs of models (proxies.py),
and DataDecide's decision accuracy across scales (Magnusson et al. 2025; decision.py). This module
registers the fit (kept free of heavy imports: Snakemake reads it when it parses the workflow).
"""

from dataclasses import dataclass

from lmforecast.fits.registry import Figure, Fit, Settings


@dataclass(frozen=True)
class TaskGroup(Settings):
    name: str
    tasks: tuple[str, ...]


@dataclass(frozen=True)
class LightGBMSettings(Settings):
    n_estimators: int
    learning_rate: float
    num_leaves: int
    min_child_samples: int


@dataclass(frozen=True)
class DecisionSettings(Settings):
    scale: tuple[str, ...]  # runs columns that make a scale (DataDecide: the model size)
    recipe: tuple[str, ...]  # runs columns that make a recipe (what the sweep compares)


@dataclass(frozen=True)
class PairwiseSettings(Settings):
    models: str  # last: each run's last checkpoint; all: every fine-tuned checkpoint
    compare_within: str | tuple[str, ...]  # all, or columns a pair must share (a comparable budget)
    task_groups: tuple[TaskGroup, ...]
    sft_method: str
    sft_data: str
    sft_metric: str
    tie_epsilon: float
    learned_proxies: str | tuple[str, ...]
    splits: int
    train_frac: float
    bootstrap: int
    gap_bins: int
    top_k: int
    lightgbm: LightGBMSettings
    decision: DecisionSettings
    seed: int


FIGURES = (
    Figure(
        "pairwise_accuracy",
        """Pairwise selection as in Zeng et al. 2025: for every pair of models (each run's
last checkpoint), does the proxy measured before SFT order the pair as their post-SFT score averaged
over the task group does? Bars are the accuracy over all non-tied pairs with 95% bootstrap intervals
over the models (the learned LightGBM comparator: accuracy on pairs of models held out of its training
split, interval over the random splits); colour is the proxy family; dotted: chance (0.5). Proxies are
ordered by accuracy on the first task group.""",
    ),
    Figure(
        "pairwise_gap",
        """Accuracy against the true post-SFT gap between the two models of a pair: pairs
binned by quantiles of the gap, accuracy per bin, for 1/perplexity (dashed) and the three most accurate
single proxies of each task group (results/fits/pairwise_gap.parquet). Zeng et al. found perplexity's
accuracy falling as the gap grows while good proxies rise.""",
    ),
)


def run(fit) -> list[str]:
    from lmforecast import io
    from lmforecast.fits.pairwise.decision import decision_accuracy
    from lmforecast.fits.pairwise.proxies import fit_pairwise
    from lmforecast.report import plots
    from lmforecast.report.html import write_caption
    from lmforecast.tables import write

    results, gap, summary = fit_pairwise(fit.tables, fit.settings)
    decision = decision_accuracy(fit.tables, fit.settings)
    write(results.to_arrow(), fit.out("pairwise.parquet"))
    write(gap.to_arrow(), fit.out("pairwise_gap.parquet"))
    write(decision.to_arrow(), fit.out("decision.parquet"))
    io.write_json(
        {
            "config": fit.spec,
            "task_groups": summary,
            "decision": [{k: io.json_safe(v) for k, v in r.items()} for r in decision.to_dicts()],
        },
        fit.out("pairwise.json"),
    )
    plots.plot_pairwise_accuracy(results, fit.figure("pairwise_accuracy"))
    plots.plot_pairwise_gap(results, gap, fit.figure("pairwise_gap"))
    for figure in FIGURES:
        write_caption(figure.caption, fit.figure(figure.name))
    lines = []
    for group, g in summary.items():
        ppl = g.get("perplexity") or {}
        lines.append(
            f"[{group}] {g['n_models']} models, {g['n_pairs']} pairs ({g['n_ties']} ties): "
            f"1/PPL accuracy {ppl.get('accuracy')} held-out {ppl.get('heldout_mean')}; "
            f"learned held-out {g['learned']['heldout_mean']} +- {g['learned']['heldout_std']}; "
            f"best single proxy {g['best_single_proxy']}"
        )
    return lines


def section(fits_dir, report_dir) -> str:
    from lmforecast.report import html

    return "".join(html.figure(report_dir / f"{f.name}.png") for f in FIGURES)


def leaderboard_rows(fits_dir) -> list[dict]:
    """Which of two models is better after SFT on a task group (pairwise accuracy; higher is better)."""
    from lmforecast.report import html

    rows = []
    for r in html.read(fits_dir / "pairwise.parquet", "pairwise results").iter_rows(named=True):
        learned = r["proxy"] == "learned"
        rows.append(
            {
                "question": "pairwise",
                "target": f"post-SFT order, task group '{r['task_group']}'",
                "predictor": "learned comparator" if learned else f"proxy {r['proxy']}",
                "measure": "pairwise accuracy",
                "value": r["accuracy"],
                "lo": r["ci_low"],
                "hi": r["ci_high"],
                "interval": (
                    "95% interval over splits of the models (out-of-split pairs)"
                    if learned
                    else "95% bootstrap interval over the models"
                ),
                "n": r["n_pairs"],
                "better": "higher",
            }
        )
    return rows


def check(config: dict) -> list[str]:
    """fit.pairwise against the SFT it labels pairs with."""
    if "import" in config:
        return []
    from lmforecast.measure.tasks import resolve_task

    pw, sft, errors = config["fit"]["pairwise"], config["sft"], []
    names = [g["name"] for g in pw["task_groups"]]
    for i, group in enumerate(pw["task_groups"]):
        if group["name"] in names[:i]:
            errors.append(f"fit.pairwise.task_groups[{i}].name: duplicate task group {group['name']!r}")
        unknown = sorted(set(group["tasks"]) - {resolve_task(t).name for t in sft["tasks"]})  # references -> names
        if unknown:
            errors.append(f"fit.pairwise.task_groups[{i}].tasks: {unknown} are not in sft.tasks")
    if pw["sft_method"] not in sft["methods"]:
        errors.append(f"fit.pairwise.sft_method: {pw['sft_method']!r} is not in sft.methods {sft['methods']}")
    if pw["sft_data"] == "multitask" and not (sft["multitask"] and len(sft["tasks"]) > 1):
        errors.append("fit.pairwise.sft_data: 'multitask' needs sft.multitask: true and at least two sft.tasks")
    return errors


SCHEMA = """
type: object
additionalProperties: false
required: [models, compare_within, task_groups, sft_method, sft_data, sft_metric, tie_epsilon, learned_proxies,
           splits, train_frac, bootstrap, gap_bins, top_k, lightgbm, decision, seed]
properties:
  models: {enum: [last, all], description: "each run's last checkpoint, or every checkpoint that sft.checkpoints fine-tunes"}
  compare_within:
    description: "'all' (every pair), or a list of runs/checkpoints columns that a pair must share (a comparable budget)"
    oneOf:
      - {const: all}
      - {type: array, minItems: 1, uniqueItems: true, items: {$ref: "#/$defs/model_column"}}
  task_groups:
    description: a list (a user's list replaces the default's; mappings would be merged with it)
    type: array
    minItems: 1
    items:
      type: object
      additionalProperties: false
      required: [name, tasks]
      properties:
        name: {$ref: "#/$defs/name"}
        tasks: {type: array, minItems: 1, uniqueItems: true, items: {$ref: "#/$defs/task"}}
  sft_method: {$ref: "#/$defs/sft_method"}
  sft_data: {enum: [single, multitask]}
  sft_metric: {enum: [acc, acc_norm, correct_prob, norm_correct_prob, logprob_correct]}
  tie_epsilon: {type: number, minimum: 0}
  learned_proxies:
    description: "'all' or a list of proxy names (see lmforecast/fits/pairwise/proxies.py)"
    oneOf:
      - {const: all}
      - {type: array, minItems: 1, uniqueItems: true, items: {type: string}}
  splits: {$ref: "#/$defs/posint"}
  train_frac: {type: number, exclusiveMinimum: 0, exclusiveMaximum: 1}
  bootstrap: {$ref: "#/$defs/posint"}
  gap_bins: {$ref: "#/$defs/posint"}
  top_k: {$ref: "#/$defs/posint"}
  lightgbm:
    type: object
    additionalProperties: false
    required: [n_estimators, learning_rate, num_leaves, min_child_samples]
    properties:
      n_estimators: {$ref: "#/$defs/posint"}
      learning_rate: {type: number, exclusiveMinimum: 0}
      num_leaves: {type: integer, minimum: 2}
      min_child_samples: {$ref: "#/$defs/posint"}
  decision:
    type: object
    additionalProperties: false
    required: [scale, recipe]
    properties:
      scale: {type: array, minItems: 1, uniqueItems: true, items: {$ref: "#/$defs/run_column"}}
      recipe: {type: array, minItems: 1, uniqueItems: true, items: {$ref: "#/$defs/run_column"}}
  seed: {type: integer, minimum: 0}
"""

FIT = Fit(
    name="pairwise",
    title="Pairwise selection (Zeng et al. 2025)",
    settings=PairwiseSettings,
    schema=SCHEMA,
    tables=("runs", "checkpoints", "domain_losses", "task_scores", "sft_scores"),
    outputs=("pairwise.parquet", "pairwise_gap.parquet", "decision.parquet", "pairwise.json"),
    figures=lambda config: FIGURES,
    run=run,
    section=section,
    needs_training=True,
    check=check,
    leaderboard=leaderboard_rows,
    runtime=30,
    order=20,
)
