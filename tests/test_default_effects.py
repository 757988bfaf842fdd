"""scripts/default_effects.py: the SFT gain per task and the README's per-run table, on hand-made tables."""

import importlib.util
from pathlib import Path

import polars as pl
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def effects():
    spec = importlib.util.spec_from_file_location("default_effects", ROOT / "scripts" / "default_effects.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _tables():
    """Two runs at their last step (10), fact_qa only: zero-shot on both templates, post-SFT on `question`."""
    zero = {("strong", "statement"): 0.9, ("strong", "question"): 0.3, ("weak", "statement"): 0.3, ("weak", "question"): 0.25}
    task_scores = pl.DataFrame(
        [
            {"run": r, "step": 10, "task": "fact_qa", "prompt": p, "shots": 0, "metric": "acc", "value": v}
            for (r, p), v in zero.items()
        ]
    )
    sft_scores = pl.DataFrame(
        [
            {
                "run": r,
                "step": 10,
                "task": "fact_qa",
                "sft_method": "full",
                "sft_data": "single",
                "metric": "acc",
                "value": v,
                "n": 240,
            }
            for r, v in (("strong", 0.6), ("weak", 0.2))
        ]
    )
    return task_scores, sft_scores


def test_gain_over_learned_runs_and_the_per_run_table(effects):
    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    both = effects.paired(*_tables(), cfg, ROOT / "resources" / "tasks", learned=0.1)
    gains = effects.sft_gains(both).row(0, named=True)
    # post-SFT minus zero-shot on SFT's prompt (question); only the run above chance + 0.1 on `statement` learned
    assert gains["gain_all"] == pytest.approx(((0.6 - 0.3) + (0.2 - 0.25)) / 2)
    assert gains["learned_runs"] == 1 and gains["gain_learned"] == pytest.approx(0.3)
    table = effects.per_run(both)
    assert table["run"].to_list() == ["strong", "weak"]
    assert table["fact_qa"].to_list() == ["0.90 / 0.30 -> 0.60", "0.30 / 0.25 -> 0.20"]
