"""A sweep of external models only (nothing trained): two suites of three tiny published-style checkpoints
run evaluate -> SFT -> aggregate -> fits -> report through Snakemake itself.

The smoke config's world and settings, with `runs: []` and `external:` two suites (HF LlamaForCausalLM
directories with the project tokenizer beside them, as save_pretrained writes them). fit.scaling runs and
skips its one family, saying so: it needs at least 3 runs per family to fit and 1 to predict.
"""

import copy

import polars as pl
import pytest
import yaml
from smoke import SMOKE, copy_workflow, snakemake
from tiny import hf_llama_dir

from lmforecast.config import ConfigError, validate
from lmforecast.data import tokenizer as tokenizer_lib

SUITES = {"suite-s": (16, 1), "suite-m": (32, 2)}  # name -> (hidden size, layers)
STEPS = (100, 200, 300)
TOKENS_PER_STEP = 256


def _suite(tok_dir, directory, hidden, layers, seed):
    """A suite's checkpoints (step -> directory), each a tiny Llama of its own weights."""
    return {step: str(hf_llama_dir(tok_dir, directory / f"step{step}", hidden, layers, seed + k)) for k, step in enumerate(STEPS)}


def _config(external):
    config = yaml.safe_load(SMOKE.read_text())
    config["runs"] = []
    config["external"] = external
    config["evaluation"].update(tasks=["fact_qa", "sentiment"], shots=[0])
    config["sft"].update(methods=["full"], multitask=False)
    fit = config["fit"]
    fit["pairwise"].update(sft_data="single", task_groups=[{"name": "all", "tasks": ["fact_qa", "sentiment"]}], bootstrap=10)
    fit["scaling"]["bootstrap"] = 2  # its one family is skipped (too few runs) all the same
    fit["selection"]["shots"] = fit["transfer"]["shots"] = fit["relatedness"]["shots"] = 0
    return config


@pytest.fixture(scope="module")
def external(tiny_tokenizer, tmp_path_factory):
    root = tmp_path_factory.mktemp("suites")
    return [
        {
            "name": name,
            "steps": _suite(tiny_tokenizer, root / name, hidden, layers, seed=i * 100),
            "tokens_per_step": TOKENS_PER_STEP,
        }
        for i, (name, (hidden, layers)) in enumerate(SUITES.items())
    ]


def test_a_sweep_of_external_suites_only_runs_every_fit_and_the_report(external, tmp_path):
    workdir = copy_workflow(tmp_path)
    (workdir / "config.yaml").write_text(yaml.safe_dump(_config(external), sort_keys=False))
    snakemake(workdir)

    tables = {n: pl.read_parquet(workdir / "results" / "tables" / f"{n}.parquet") for n in ("runs", "checkpoints")}
    runs = tables["runs"].sort("run")
    assert runs["run"].to_list() == ["suite-m", "suite-s"]
    # parameters counted from each model's config: tied embedding once, non-embedding = the rest
    vocab = tokenizer_lib.load(external[0]["steps"][100]).get_vocab_size()
    for row in runs.iter_rows(named=True):
        hidden, layers = SUITES[row["run"]]
        nonembed = layers * (4 * hidden * hidden + 3 * hidden * 3 * hidden + 2 * hidden) + hidden
        assert (row["n_params_nonembed"], row["n_params"]) == (nonembed, nonembed + vocab * hidden)
        assert (row["d_model"], row["n_layers"], row["tokens_planned"]) == (hidden, layers, STEPS[-1] * TOKENS_PER_STEP)
        assert row["lr"] is None and row["mixture"] == "external"
    ck = tables["checkpoints"]
    assert ck.group_by("run").agg(pl.col("step").sort()).sort("run")["step"].to_list() == [list(STEPS)] * 2
    assert ck["tokens"].to_list() == [s * TOKENS_PER_STEP for s in STEPS] * 2 and (ck["flops"] > 0).all()

    results = workdir / "results"
    losses = pl.read_parquet(results / "tables" / "domain_losses.parquet")
    assert losses.select("run", "step").unique().height == 6 and losses["loss"].is_finite().all()
    sft = pl.read_parquet(results / "tables" / "sft_scores.parquet")
    assert set(sft["run"]) == set(SUITES) and set(sft["step"]) == {STEPS[-1]}
    assert "[external/clm/lr=?] skipped: 1 training runs and 1 held out" in (workdir / "logs" / "fit_scaling.log").read_text()
    for summary in ("scaling.json", "pairwise.json", "transfer.json", "point_relatedness.json", "selection.json"):
        assert (results / "fits" / summary).stat().st_size > 0
    relatedness = pl.read_parquet(results / "fits" / "task_relatedness.parquet")
    assert relatedness.height > 0  # over the six checkpoints
    page = (results / "report" / "index.html").read_text()
    assert "External models (published checkpoints, evaluated here, not trained here): suite-s (3 checkpoints)" in page
    assert "suite-m" in page


def test_a_missing_external_checkpoint_directory_stops_the_config(external, tmp_path):
    suites = copy.deepcopy(external)
    suites[1]["steps"][200] = str(tmp_path / "gone")
    with pytest.raises(ConfigError, match=r"external\[1\]\.steps\.200: '.*gone' is not a directory"):
        validate(_config(suites))
    suites = copy.deepcopy(external)
    suites[0]["path"] = suites[0]["steps"][100]
    with pytest.raises(ConfigError, match=r"external\[0\]: give exactly one of path .* or steps"):
        validate(_config(suites))
    empty = _config([])
    with pytest.raises(ConfigError, match=r"runs: empty; expected .* or an 'external' list of published models"):
        validate(empty)
