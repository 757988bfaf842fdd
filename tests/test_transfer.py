import numpy as np
import polars as pl
import pytest
from scipy import stats

from lmforecast.fits.transfer import TransferSettings
from lmforecast.fits.transfer.correlations import correlations, transfer_correlations

CFG = {"metric": "acc", "shots": 0}


def synthetic(steps_tuned):
    """5 runs x 4 checkpoints, two prompts; SFT accuracy rises with the first prompt's zero-shot accuracy."""
    rng = np.random.default_rng(0)
    ts, sft = [], []
    for r in range(5):
        for step in (10, 20, 30, 40):
            zs = 0.2 + 0.1 * r + 0.004 * step
            for prompt, value in (("good", zs), ("noisy", rng.uniform(0.2, 0.4))):
                for shots in (0, 2):
                    ts.append(
                        {
                            "run": f"r{r}",
                            "step": step,
                            "task": "t",
                            "prompt": prompt,
                            "shots": shots,
                            "metric": "acc",
                            "value": value,
                        }
                    )
            ts.append(
                {"run": f"r{r}", "step": step, "task": "t", "prompt": "good", "shots": 0, "metric": "acc_norm", "value": 0.5}
            )
            if step in steps_tuned:
                sft.append(
                    {
                        "run": f"r{r}",
                        "step": step,
                        "task": "t",
                        "sft_method": "full",
                        "sft_data": "single",
                        "metric": "acc",
                        "value": 0.3 + 1.5 * zs**2,
                    }
                )
    return pl.DataFrame(ts), pl.DataFrame(sft)


def test_across_runs_uses_last_checkpoints_and_matches_scipy():
    ts, sft = synthetic(steps_tuned=(40,))
    corr, pairs = transfer_correlations(ts, sft, TransferSettings.from_dict(CFG))
    assert set(corr["scope"]) == {"across_runs"}  # one fine-tuned checkpoint per run: no within-run rows
    good = corr.filter(pl.col("prompt") == "good").row(0, named=True)
    assert good["n"] == 5 and good["pearson_r"] > 0.99 and good["spearman_rho"] == pytest.approx(1.0)
    p = pairs.filter(pl.col("prompt") == "noisy")
    ref = stats.pearsonr(p["zero_shot"], p["fine_tuned"])
    noisy = corr.filter(pl.col("prompt") == "noisy").row(0, named=True)
    assert noisy["pearson_r"] == pytest.approx(ref.statistic) and noisy["pearson_p"] == pytest.approx(ref.pvalue)


def test_across_checkpoints_when_several_are_fine_tuned():
    ts, sft = synthetic(steps_tuned=(10, 20, 30, 40))
    corr, _ = transfer_correlations(ts, sft, TransferSettings.from_dict(CFG))
    within = corr.filter((pl.col("scope") == "across_checkpoints") & (pl.col("prompt") == "good"))
    assert within.height == 5 and (within["n"] == 4).all() and (within["spearman_rho"] == 1.0).all()
    across = corr.filter(pl.col("scope") == "across_runs")
    assert (across["n"] == 5).all()  # still one point per run: its last fine-tuned checkpoint


def test_constant_or_short_input_gives_nan():
    assert np.isnan(correlations([0.1, 0.2, 0.3], [0.5, 0.5, 0.5])["pearson_r"])
    assert np.isnan(correlations([0.1, 0.2], [0.3, 0.4])["spearman_p"])


def test_no_overlap_is_named():
    ts, sft = synthetic(steps_tuned=(40,))
    with pytest.raises(ValueError, match="no checkpoint has both a zero-shot acc"):
        transfer_correlations(ts, sft.with_columns(pl.lit(99).alias("step")), TransferSettings.from_dict(CFG))
