"""Copies the Pythia suite's zero-shot evaluations (Biderman et al. 2023; EleutherAI/pythia, commit a19eecb,
evals/pythia-v1; Apache-2.0, LICENSE beside this file) that the example needs, and writes its analysis
config config/examples/pythia-evals.yaml.

Modified from the original: of each lm-evaluation-harness 0.3 results file only the 8 tasks below are kept
(not the MMLU subjects and CrowS-Pairs); sizes 70M-12B of the standard and the deduplicated suite, every
checkpoint, except the standard 1B (its directory, pythia-1b-bf16, mixes 5-shot files into zero-shot).
Usage (from the repository root):
    python resources/public/pythia-evals/convert.py ../shared/data/public/pythia-evals
"""

import json
import sys
from pathlib import Path

HERE = Path(__file__).parent
ROOT = HERE.parents[2]
TASKS = {"arc_easy": 0.25, "arc_challenge": 0.25, "lambada_openai": 0.0, "logiqa": 0.25, "piqa": 0.5, "sciq": 0.25}
TASKS |= {"winogrande": 0.5, "wsc": 0.5}
# parameters, total and non-embedding (the Pythia paper's table 1)
PARAMS = {
    "70m": (70426624, 18915328),
    "160m": (162322944, 85056000),
    "410m": (405334016, 302311424),
    "1b": (1011781632, 805736448),
    "1.4b": (1414647808, 1208602624),
    "2.8b": (2775208960, 2517652480),
    "6.9b": (6857302016, 6444163072),
    "12b": (11846072320, 11327027200),
}
TOKENS_PER_STEP = 1024 * 2048  # every size: batch of 1024 sequences of 2048 tokens


def main(src: Path):
    runs = []
    for suite, mixture in (("", "pile"), ("-deduped", "pile-deduped")):
        for size, (n, n_nonembed) in PARAMS.items():
            model = f"pythia-{size}{suite}"
            if not (src / "evals" / "pythia-v1" / model).is_dir():
                continue  # pythia-1b: see the module docstring
            out = HERE / "evals" / model
            out.mkdir(parents=True, exist_ok=True)
            for path in sorted((src / "evals" / "pythia-v1" / model / "zero-shot").glob("*.json")):
                data = json.loads(path.read_text())
                data["results"] = {t: data["results"][t] for t in TASKS}
                data["versions"] = {t: data["versions"][t] for t in TASKS}
                step = path.stem.rsplit("_step", 1)[1]
                (out / f"step{step}.json").write_text(json.dumps(data, sort_keys=True) + "\n")
            runs.append(
                {"name": model, "n_params": n, "n_params_nonembed": n_nonembed, "mixture": mixture}
                | {"tokens_per_step": TOKENS_PER_STEP}
            )
    held = [r["name"] for r in runs if r["n_params"] > 5e9]
    rel = HERE.relative_to(ROOT)
    lines = [
        "# The Pythia suite (Biderman et al. 2023; Apache-2.0): zero-shot lm-evaluation-harness results of",
        "# 70M-12B models at about 27 checkpoints each, imported from resources/public/pythia-evals/",
        "# (written by its convert.py). Predicts the 6.9B and 12B models' final accuracy from 70M-2.8B:",
        "#   snakemake --cores 2 --configfile config/examples/pythia-evals.yaml",
        "runs: []",
        "import:",
        "  runs:",
        *(f"    - {json.dumps(r)}" for r in runs),
        "  chance:",
        *(f"    {t}: {c}" for t, c in TASKS.items()),
        "  lm_eval:",
        f"    dir: {rel}/evals",
        "    pattern: '(?P<run>pythia-[^/]+)/step(?P<step>\\d+)\\.json'",
        "fit:",
        "  scaling:",
        "    metric: acc",
        "    shots: 0",
        "    emerged_margin: 0.05",
        f"    holdout: [{', '.join(held)}]",
        "    predictors: [direct]   # no held-out losses in this set: the chains through a loss do not apply",
        "    bootstrap: 100",
    ]
    (ROOT / "config" / "examples" / "pythia-evals.yaml").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
