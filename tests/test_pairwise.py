import json

import numpy as np
import polars as pl
import pytest

from lmforecast.cli import main
from lmforecast.config import ConfigError
from lmforecast.fits.pairwise import PairwiseSettings
from lmforecast.fits.pairwise.decision import decision_accuracy
from lmforecast.fits.pairwise.proxies import (
    LEARNED,
    build_dataset,
    domain_proxies,
    fit_pairwise,
    model_splits,
    pair_features,
    pairwise_accuracy,
)

SPEC = {
    "models": "last",
    "compare_within": "all",
    "task_groups": [{"name": "all", "tasks": ["t1", "t2"]}],
    "sft_method": "full",
    "sft_data": "multitask",
    "sft_metric": "acc",
    "tie_epsilon": 0.0,
    "learned_proxies": "all",
    "splits": 20,
    "train_frac": 0.6,
    "bootstrap": 200,
    "gap_bins": 3,
    "top_k": 1,
    "lightgbm": {"n_estimators": 50, "learning_rate": 0.1, "num_leaves": 7, "min_child_samples": 3},
    "decision": {"scale": ["size"], "recipe": ["mixture"]},
    "seed": 0,
}


def synthetic_tables(a, b, score, span_corruption=False):
    """One run per model (two checkpoints each): domain d1's loss falls with a, d2's with b; the post-SFT acc is `score`.

    Runs alternate between sizes s/m and carry mixture = their index // 2, so each mixture has one run per size.
    """
    runs, ck, dl, ts, sft = [], [], [], [], []
    for k, (ak, bk, sk) in enumerate(zip(a, b, score)):
        run = f"r{k:02d}"
        size = "sm"[k % 2]
        runs.append(
            {
                "run": run,
                "size": size,
                "mixture": f"mix{k // 2}",
                "objective": "clm",
                "lr": 0.003,
                "seed": 0,
                "tokens_planned": 1000,
                "n_params": 100 * (1 + k % 2),
            }
        )
        for step in (5, 10):
            late = step == 10
            ck.append(
                {
                    "run": run,
                    "step": step,
                    "tokens": step * 100,
                    "flops": float(step * 100 * (1 + k % 2)),
                    "train_loss": 3.0,
                    "lr": 0.003,
                }
            )
            for domain, x in (("d1", ak), ("d2", bk)):
                row = {
                    "run": run,
                    "step": step,
                    "domain": domain,
                    "loss": 3.0 - x - late,
                    "bits_per_byte": (3.0 - x - late) / 2,
                    "tokens": 100,
                    "bytes": 300,
                }
                if span_corruption:
                    row["span_corruption_loss"] = 4.0 - x
                dl.append(row)
            for task in ("t1", "t2"):
                for metric, value in (("acc", 0.25 + 0.1 * late), ("bits_per_byte", 2.0 - ak)):
                    ts.append(
                        {
                            "run": run,
                            "step": step,
                            "task": task,
                            "prompt": "p",
                            "shots": 0,
                            "metric": metric,
                            "value": value,
                            "n": 10,
                            "chance": 0.25,
                        }
                    )
                if late:
                    sft.append(
                        {
                            "run": run,
                            "step": step,
                            "task": task,
                            "sft_method": "full",
                            "sft_data": "multitask",
                            "metric": "acc",
                            "value": float(sk),
                            "n": 10,
                        }
                    )
    return {
        "runs": pl.DataFrame(runs),
        "checkpoints": pl.DataFrame(ck),
        "domain_losses": pl.DataFrame(dl),
        "task_scores": pl.DataFrame(ts),
        "sft_scores": pl.DataFrame(sft),
    }


def test_split_never_puts_a_run_on_both_sides():
    runs = np.repeat([f"r{k}" for k in range(10)], 3)  # three checkpoints per run
    for train, test in model_splits(runs, 20, 0.6, seed=0):
        assert not set(runs[train]) & set(runs[test])
        assert (train ^ test).all()
        assert len(set(runs[train])) == 6
    again = model_splits(runs, 20, 0.6, seed=0)
    assert all((x[0] == y[0]).all() for x, y in zip(model_splits(runs, 20, 0.6, seed=0), again))


def test_pair_features_are_difference_product_and_both_values():
    P = np.array([[1.0, 10.0], [2.0, 20.0], [4.0, 40.0]])
    X, names = pair_features(P, [0, 2], [1, 0], names=["p", "q"])
    assert names == ["diff:p", "diff:q", "prod:p", "prod:q", "i:p", "i:q", "j:p", "j:q"]
    np.testing.assert_array_equal(X[0], [-1, -10, 2, 200, 1, 10, 2, 20])
    np.testing.assert_array_equal(X[1], [3, 30, 4, 400, 4, 40, 1, 10])


def test_accuracy_of_the_label_is_one_and_of_its_negation_zero():
    score = np.array([0.1, 0.5, 0.3, 0.9, 0.2])
    assert pairwise_accuracy(score, score) == 1.0
    assert pairwise_accuracy(-score, score) == 0.0
    assert pairwise_accuracy(np.zeros(5), score) == 0.5  # a proxy that ties everything is a coin
    # ties of the label are left out: 0.1 vs 0.12 is within epsilon
    assert pairwise_accuracy([0, 1, 2], [0.1, 0.12, 0.5], eps=0.05) == 1.0


def test_proxies_are_data_driven_and_oriented_higher_is_better():
    rng = np.random.default_rng(0)
    a, b = rng.uniform(size=6), rng.uniform(size=6)
    plain = set(domain_proxies(synthetic_tables(a, b, a)["domain_losses"])["proxy"])
    assert plain == {"inv_ppl", "-loss[d1]", "-loss[d2]", "-bits_per_byte", "-bits_per_byte[d1]", "-bits_per_byte[d2]"}
    t = synthetic_tables(a, b, a, span_corruption=True)
    [d] = build_dataset(t, PairwiseSettings.from_dict(SPEC))
    assert d.dropped == []
    assert {"-span_corruption_loss", "-span_corruption_loss[d1]", "-bits_per_byte@0shot", "acc@0shot"} <= set(d.proxies)
    # the label is a, so everything that falls with loss on d1 (lower bits per byte too) ranks perfectly
    for proxy in ("-loss[d1]", "-span_corruption_loss[d1]", "-bits_per_byte@0shot"):
        assert pairwise_accuracy(d.P[:, d.proxies.index(proxy)], d.score) == 1.0


def test_a_column_only_some_models_have_is_dropped_and_a_model_without_evaluation_is_named():
    a = np.linspace(0, 1, 6)
    t = synthetic_tables(a, a, a, span_corruption=True)
    t["domain_losses"] = t["domain_losses"].with_columns(
        pl.when(pl.col("run") == "r02").then(None).otherwise(pl.col("span_corruption_loss")).alias("span_corruption_loss")
    )
    [d] = build_dataset(t, PairwiseSettings.from_dict(SPEC))
    assert "-span_corruption_loss" in d.dropped and "-span_corruption_loss" not in d.proxies and "inv_ppl" in d.proxies
    t["task_scores"] = t["task_scores"].filter(pl.col("run") != "r04")
    with pytest.raises(ValueError, match=r"table task_scores: no rows for the fine-tuned models \[\('r04', 10\)\]"):
        build_dataset(t, PairwiseSettings.from_dict(SPEC))


def test_ties_are_counted_and_excluded():
    a = np.linspace(0, 1, 6)
    t = synthetic_tables(a, a, [0.1, 0.1, 0.3, 0.5, 0.7, 0.9])
    [d] = build_dataset(t, PairwiseSettings.from_dict({**SPEC, "tie_epsilon": 0.01}))
    assert d.n_ties == 1 and d.n_pairs == 14


def test_pairs_only_within_a_comparable_budget():
    a = np.linspace(0, 1, 8)
    [d] = build_dataset(synthetic_tables(a, a, a), PairwiseSettings.from_dict({**SPEC, "compare_within": ["size"]}))
    assert d.n_pairs == 2 * 6  # two sizes of four runs each
    sizes = np.array(["sm"[k % 2] for k in range(8)])
    i, j = np.nonzero(d.comparable)
    assert (sizes[i] == sizes[j]).all()


def test_every_fine_tuned_checkpoint_is_a_model():
    a = np.linspace(0, 1, 6)
    t = synthetic_tables(a, a, a)
    early = t["sft_scores"].filter(pl.col("run") < "r03").with_columns(pl.lit(5, pl.Int64).alias("step"), pl.col("value") - 0.5)
    t["sft_scores"] = pl.concat([t["sft_scores"], early])
    [d] = build_dataset(t, PairwiseSettings.from_dict({**SPEC, "models": "all"}))
    assert d.models.height == 9 and d.models.filter(pl.col("step") == 5)["run"].to_list() == ["r00", "r01", "r02"]


def test_learned_comparator_beats_every_single_proxy_on_a_non_monotone_score():
    rng = np.random.default_rng(1)
    n = 40
    a, b = rng.uniform(size=n), rng.uniform(size=n)
    score = -np.abs(a - 0.5) - np.abs(b - 0.5)  # best in the middle: no single proxy orders it
    results, gap, summary = fit_pairwise(synthetic_tables(a, b, score), PairwiseSettings.from_dict(SPEC))
    learned = results.filter(pl.col("proxy") == LEARNED).row(0, named=True)
    singles = results.filter(pl.col("proxy") != LEARNED)
    assert learned["n_splits"] == 20
    assert learned["heldout_mean"] > singles["heldout_mean"].max() + 0.1, (learned, singles.sort("heldout_mean"))
    assert learned["accuracy"] > singles["accuracy"].max()
    assert learned["top_k_recall"] > learned["top_k_chance"]
    assert summary["all"]["learned"]["heldout_mean"] == pytest.approx(learned["heldout_mean"])
    # deterministic: the same tables and seed give the same numbers
    again, _, _ = fit_pairwise(synthetic_tables(a, b, score), PairwiseSettings.from_dict(SPEC))
    assert again.equals(results)


def test_perplexity_that_disagrees_with_sft_is_flagged():
    rng = np.random.default_rng(2)
    a = rng.uniform(size=12)
    results, gap, summary = fit_pairwise(
        synthetic_tables(a, a, -a), PairwiseSettings.from_dict({**SPEC, "learned_proxies": ["inv_ppl"]})
    )
    ppl = summary["all"]["perplexity"]
    assert ppl["accuracy"] == 0.0 and ppl["disagreement_rate"] == 1.0 and ppl["worse_than_chance"]
    # gap bins partition the pairs
    assert gap.filter(pl.col("proxy") == "inv_ppl")["n_pairs"].sum() == 66


def test_too_few_models_gives_nan_with_a_reason():
    t = synthetic_tables([0.1, 0.5, 0.9], [0.1, 0.5, 0.9], [0.2, 0.4, 0.6])
    results, _, summary = fit_pairwise(t, PairwiseSettings.from_dict(SPEC))
    learned = results.filter(pl.col("proxy") == LEARNED).row(0, named=True)
    assert np.isnan(learned["heldout_mean"]) and learned["note"].startswith("not fitted")
    # the unsupervised proxies keep their accuracy over all pairs; held out, they share the (missing) splits
    ppl = results.filter(pl.col("proxy") == "inv_ppl").row(0, named=True)
    assert ppl["accuracy"] == 1.0 and np.isnan(ppl["heldout_mean"]) and ppl["note"].startswith("no usable split")
    assert summary["all"]["learned"]["heldout_mean"] is None
    with pytest.raises(ConfigError, match="need at least 2"):
        fit_pairwise({name: table.filter(pl.col("run") == "r00") for name, table in t.items()}, PairwiseSettings.from_dict(SPEC))


def test_bad_spec_is_named_before_fitting():
    t = synthetic_tables([0.1, 0.5, 0.9, 0.3], [0.1, 0.5, 0.9, 0.3], [0.2, 0.4, 0.6, 0.1])
    with pytest.raises(ConfigError, match=r"fit\.pairwise\.learned_proxies: \['nope'\]"):
        fit_pairwise(t, PairwiseSettings.from_dict({**SPEC, "learned_proxies": ["nope"]}))
    with pytest.raises(ConfigError, match=r"fit\.pairwise\.task_groups \('all'\): tasks \['t3'\]"):
        fit_pairwise(t, PairwiseSettings.from_dict({**SPEC, "task_groups": [{"name": "all", "tasks": ["t1", "t3"]}]}))
    with pytest.raises(ConfigError, match=r"fit\.pairwise\.compare_within: columns \['colour'\]"):
        fit_pairwise(t, PairwiseSettings.from_dict({**SPEC, "compare_within": ["colour"]}))
    with pytest.raises(ConfigError, match=r"no post-SFT scores of every task of group 'all' for \[\('r03', 10\)\]"):
        fit_pairwise({**t, "sft_scores": t["sft_scores"].filter(pl.col("run") != "r03")}, PairwiseSettings.from_dict(SPEC))


def test_decision_accuracy_small_scale_against_the_largest():
    # 8 runs: mixtures mix0..mix3 at sizes s and m; at m (more compute) the score is the mixture's index
    a = np.array([0.4, 0.1, 0.3, 0.2, 0.2, 0.3, 0.1, 0.4])
    score = np.repeat([0.1, 0.2, 0.3, 0.4], 2) + np.where(np.arange(8) % 2, 0.0, 0.05)
    d = decision_accuracy(synthetic_tables(a, a, score), PairwiseSettings.from_dict(SPEC))
    assert set(d["scale"]) == {"size=s"} and set(d["target_scale"]) == {"size=m"}
    row = {r["proxy"]: r for r in d.iter_rows(named=True)}
    assert row["sft_score"]["accuracy"] == 1.0 and row["sft_score"]["n_pairs"] == 6
    assert row["inv_ppl"]["accuracy"] == pairwise_accuracy(a[::2], score[1::2])


def test_cli_writes_the_outputs(tmp_path):
    rng = np.random.default_rng(3)
    a, b = rng.uniform(size=10), rng.uniform(size=10)
    from lmforecast import tables

    for name, table in synthetic_tables(a, b, a + b).items():  # as the aggregate schemas (the CLI checks them)
        columns = table.to_dict(as_series=False)
        full = {f.name: columns.get(f.name, [None] * table.height) for f in tables.SCHEMAS[name]}
        tables.write(tables.to_table(name, full), tmp_path / f"{name}.parquet")
    out = tmp_path / "fits"
    main(
        [
            "fit",
            "pairwise",
            "--spec",
            json.dumps(SPEC),
            "--tables",
            str(tmp_path),
            "--fits",
            str(out),
            "--report-dir",
            str(tmp_path / "report"),
        ]
    )
    results = pl.read_parquet(out / "pairwise.parquet")
    assert LEARNED in set(results["proxy"]) and results["n_pairs"][0] == 45
    assert pl.read_parquet(out / "pairwise_gap.parquet").height > 0
    assert pl.read_parquet(out / "decision.parquet")["scale"].unique().to_list() == ["size=s"]
    summary = json.loads((out / "pairwise.json").read_text())
    assert summary["config"] == SPEC and "perplexity" in summary["task_groups"]["all"]
    for figure in ("pairwise_accuracy", "pairwise_gap"):  # drawn by the fit, captioned beside it
        assert (tmp_path / "report" / f"{figure}.png").stat().st_size > 5000
        assert "Zeng et al." in (tmp_path / "report" / f"{figure}.rst").read_text()
