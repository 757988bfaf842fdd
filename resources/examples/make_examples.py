"""Writes the example inputs of config/analysis.yaml: a synthetic model ladder (one wide CSV
per run) and lm-evaluation-harness results JSON for four of its final checkpoints.

The numbers are drawn from known laws, so a fit on them can be checked against the truth:
  domain loss   L_d(C) = E_d + A_d (C / 1e18)^-ALPHA   (nats/token, 0.5% noise), C = 6 N D
  task score    chance + slope * (onset - L), clipped to [chance, cap], binomial noise over n questions
with L the mean of the domain losses. Run from the repository root:
  python resources/examples/make_examples.py
"""

import json
from pathlib import Path

import numpy as np
import polars as pl

OUT = Path(__file__).resolve().parent
SEED = 0
ALPHA = 0.15
DOMAINS = {"web": (1.8, 1.2), "code": (1.1, 1.0), "books": (2.1, 1.4)}  # (E_d, A_d)
RUNS = {"web-20M": 20e6, "web-50M": 50e6, "web-120M": 120e6, "web-300M": 300e6, "web-700M": 700e6}  # non-embedding N
TOKENS_PER_STEP = 2**19
CHECKPOINTS = 6
# task: (chance, slope, onset loss, cap, questions); the ladder's tasks, then the lm-eval ones
LADDER_TASKS = {
    ("arc_easy", "acc"): (0.25, 0.30, 3.9, 0.95, 2376),
    ("piqa", "acc"): (0.5, 0.15, 4.2, 0.95, 1838),
    ("hellaswag", "acc_norm"): (0.25, 0.20, 3.8, 0.95, 10042),
}
LM_EVAL_TASKS = {
    "sciq": {"acc": (0.25, 0.35, 4.0, 0.97, 1000), "acc_norm": (0.25, 0.30, 3.9, 0.95, 1000)},
    "lambada_openai": {"acc": (0.0, 0.25, 3.8, 0.9, 5153)},
}


def loss_truth(compute):
    return {d: e + a * (compute / 1e18) ** -ALPHA for d, (e, a) in DOMAINS.items()}


def score(rng, loss, chance, slope, onset, cap, n):
    p = float(np.clip(chance + slope * (onset - loss), chance, cap))
    return rng.binomial(n, p) / n


def ladder(rng, run, n):
    total = round(20 * n / TOKENS_PER_STEP)  # Chinchilla-style 20 tokens per parameter
    rows = []
    for k in range(1, CHECKPOINTS + 1):
        step = round(total * k / CHECKPOINTS)
        tokens = step * TOKENS_PER_STEP
        compute = 6 * n * tokens
        losses = {d: v * (1 + rng.normal(0, 0.005)) for d, v in loss_truth(compute).items()}
        mean = float(np.mean(list(losses.values())))
        row = {
            "step": step,
            "tokens": tokens,
            "compute": compute,
            "learning_rate": 3e-4,
            "train/CrossEntropyLoss": losses["web"] + 0.02,
        }
        row |= {f"eval/{d}/CrossEntropyLoss": v for d, v in losses.items()}
        row |= {f"downstream/{t}/{m}": score(rng, mean, *law) for (t, m), law in LADDER_TASKS.items()}
        row["downstream/arc_easy/bits_per_byte"] = 0.32 * mean * (1 + rng.normal(0, 0.01))
        rows.append(row)
    return pl.DataFrame(rows)


def lm_eval_results(rng, run, step, loss):
    """A results file as lm-evaluation-harness 0.4.x writes it (the fields this workflow reads, and some others)."""
    results, n_samples = {}, {}
    for task, metrics in LM_EVAL_TASKS.items():
        results[task] = {"alias": task}
        for metric, law in metrics.items():
            value = score(rng, loss, *law)
            results[task][f"{metric},none"] = value
            results[task][f"{metric}_stderr,none"] = float(np.sqrt(value * (1 - value) / law[-1]))
        if task == "lambada_openai":  # a loglikelihood task also reports the target's perplexity
            results[task]["perplexity,none"] = float(np.exp(1.6 * loss - 2.0))
            results[task]["perplexity_stderr,none"] = 0.1
        n = next(iter(metrics.values()))[-1]
        n_samples[task] = {"original": n, "effective": n}
    model = f"ladder/{run}-step{step}"
    return {
        "results": results,
        "group_subtasks": {t: [] for t in LM_EVAL_TASKS},
        "configs": {
            t: {"task": t, "num_fewshot": 0, "output_type": "loglikelihood" if t == "lambada_openai" else "multiple_choice"}
            for t in LM_EVAL_TASKS
        },
        "versions": {t: 1.0 for t in LM_EVAL_TASKS},
        "n-shot": {t: 0 for t in LM_EVAL_TASKS},
        "higher_is_better": {t: {m: True for m in LM_EVAL_TASKS[t]} for t in LM_EVAL_TASKS},
        "n-samples": n_samples,
        "config": {
            "model": "hf",
            "model_args": f"pretrained={model},dtype=bfloat16",
            "batch_size": "auto",
            "limit": None,
            "bootstrap_iters": 100000,
            "random_seed": 0,
            "numpy_seed": 1234,
            "torch_seed": 1234,
            "fewshot_seed": 1234,
        },
        "lm_eval_version": "0.4.8",
        "model_name": model,
        "model_name_sanitized": model.replace("/", "__"),
    }


def main():
    rng = np.random.default_rng(SEED)
    for i, (run, n) in enumerate(RUNS.items()):
        table = ladder(rng, run, n)
        (OUT / "ladder").mkdir(exist_ok=True)
        compute = table["compute"].map_elements(lambda c: f"{c:.6e}", return_dtype=pl.String)
        table.with_columns(compute).write_csv(OUT / "ladder" / f"{run}.csv", float_precision=6)
        if i == 0:
            continue  # lm-eval results for the four larger runs' final checkpoints
        last = table.row(-1, named=True)
        loss = float(np.mean([last[f"eval/{d}/CrossEntropyLoss"] for d in DOMAINS]))
        data = lm_eval_results(rng, run, last["step"], loss)
        path = OUT / "lm_eval" / data["model_name_sanitized"] / "results_2025-01-15T10-00-00.000000.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, indent=2) + "\n")
    print(f"examples written under {OUT}")


if __name__ == "__main__":
    main()
