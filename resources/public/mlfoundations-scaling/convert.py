"""Converts mlfoundations/scaling's exp_data (Gadre et al. 2024, arXiv 2403.08540; commit a003c49; MIT,
LICENSE.txt beside this file) into one ladder CSV per model (runs/*.csv) and the analysis config
config/examples/mlfoundations-scaling.yaml.

Each model is one run with one checkpoint (its last): tokens from its hyperparameters, the 8 held-out
losses (nats per token) as domains, the 46 downstream accuracies (`eval_metrics.icl`) as tasks, the
random baseline of eval_metadata.csv as each task's chance and its number of datapoints as each task's size (the
actual scores' sampling error). The config's `fit` section (the choices made by back-tests) is kept as it is; the
rest is rewritten. Usage (from the repository root):
    python resources/public/mlfoundations-scaling/convert.py ../shared/data/public/mlfoundations-scaling
"""

import csv
import json
import sys
from pathlib import Path

HERE = Path(__file__).parent
ROOT = HERE.parents[2]
SIZES = {10569312: "11M", 78914048: "79M", 153677376: "154M", 411616256: "412M", 1439795200: "1.4B", 6889410560: "6.9B"}
DATASETS = {"c4_original": "c4", "rpj": "rpj", "rw_original": "rw"}
# eval_metadata.csv's arc_challenge row repeats arc_easy's (2,376 datapoints); ARC-Challenge's test set has 1,172
SIZE_FIXES = {"arc_challenge": 1172}


def domain(val_data: str) -> str:
    """'training/eval_data/val_tok_mult/paloma_ptb/00000001.tar' -> 'paloma_ptb'."""
    parts = val_data.split("/")
    return "c4_val" if parts[2] == "c4_val" else parts[3]


def main(src: Path):
    data = src / "exp_data"
    meta = {r["Eval Task"]: r for r in csv.DictReader(open(data / "eval_metadata.csv"))}
    runs, tasks = [], None
    (HERE / "runs").mkdir(exist_ok=True)
    for path in sorted((data / "models").glob("*.json")):
        model = json.loads(path.read_text())
        h = model["hyperparameters"]
        evals = json.loads((data / "evals" / f"evaluation_{model['name']}_heavy.json").read_text())["eval_metrics"]["icl"]
        tasks = tasks or sorted(evals)
        mult = float(h["chinchilla_multiplier"])
        name = f"{DATASETS[model['dataset_name']]}-{SIZES[h['params']]}-x{mult:g}"
        row = {"step": 1, "tokens": h["tokens"]}
        row |= {f"loss/{domain(r['val_data'][0])}": r["loss"] for r in model["results"]}
        row |= {f"{t}/acc": evals[t] for t in tasks}
        with open(HERE / "runs" / f"{name}.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(row))
            w.writeheader()
            w.writerow(row)
        runs.append(
            {
                "name": name,
                "n_params": h["params"],
                "n_params_nonembed": h["params_no_embed"],
                "mixture": DATASETS[model["dataset_name"]],
                "lr": h["lr"],
            }
        )
    runs.sort(key=lambda r: (r["mixture"], r["n_params"], float(r["name"].rsplit("-x", 1)[1])))
    rel = HERE.relative_to(ROOT)
    lines = [
        "# mlfoundations/scaling (Gadre et al. 2024, arXiv 2403.08540; MIT): 104 open_lm models of 11M-6.9B on",
        "# C4, RedPajama and RefinedWeb, imported from resources/public/mlfoundations-scaling/ (written by its convert.py).",
        "# Predicts the 1.4B and 6.9B models from the smaller ones, per dataset:",
        "#   snakemake --cores 2 --configfile config/examples/mlfoundations-scaling.yaml",
        "runs: []",
        "import:",
        "  runs:",
        *(f"    - {json.dumps(r)}" for r in runs),
        "  chance:",
        *(f"    {t}: {float(meta[t]['Random baseline']) / 100:g}" for t in tasks),
        "  task_sizes:        # examples per task (eval_metadata.csv's #datapoints)",
        *(f"    {t}: {SIZE_FIXES.get(t, int(meta[t]['#datapoints']))}" for t in tasks),
        "  ladder:",
        "    step: step",
        "    tokens: tokens",
        "    flops_per_token: 6N   # C = 6 N D, N the non-embedding parameters",
        "    domains: 'loss/(?P<domain>.+)'",
        "    tasks: '(?P<task>.+)/(?P<metric>acc)'",
        "    shots: 0             # shots vary by task (eval_metadata.csv); one value here",
        "    files:",
        *(f"      - {{run: {r['name']}, path: {rel}/runs/{r['name']}.csv}}" for r in runs),
        "  task_groups:       # the paper's average top-1 error is 1 - this average (here over all 46 tasks)",
        "    - {name: avg46, tasks: [" + ", ".join(tasks) + "]}",
    ]
    config = ROOT / "config" / "examples" / "mlfoundations-scaling.yaml"
    fit = config.read_text()[config.read_text().index("\nfit:\n") :]
    config.write_text("\n".join(lines) + fit)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
