import copy
from pathlib import Path

import pytest
import yaml

from lmforecast.config import ConfigError, checkpoint_steps, load, run_spec, validate
from lmforecast.settings import Size, Training

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())


def broken(edit):
    config = copy.deepcopy(DEFAULT)
    edit(config)
    return config


CASES = [
    ("unknown top-level key", lambda c: c.update(extra=1), r"\(top level\): unknown key\(s\) \['extra'\]"),
    ("unknown run key", lambda c: c["runs"][0].update(learning_rate=1), r"runs\[0\]: unknown key\(s\) \['learning_rate'\]"),
    ("wrong type", lambda c: c["runs"][2].update(lr="fast"), r"runs\[2\]\.lr: 'fast' is not of type 'number'"),
    ("missing required field", lambda c: c["runs"][1].pop("seed"), r"runs\[1\]: 'seed' is a required property"),
    ("zero size", lambda c: c["sizes"]["s"].update(d_model=0), r"sizes\.s\.d_model: 0 is less than the minimum of 1"),
    ("heads do not divide", lambda c: c["sizes"]["m"].update(n_heads=3), r"sizes\.m: n_heads \(3\) must divide d_model \(64\)"),
    ("mixture sum", lambda c: c["mixtures"]["uniform"].update(facts=0.5), r"mixtures\.uniform: weights must sum to 1, got 1\.25"),
    ("unknown domain", lambda c: c["mixtures"]["uniform"].update(poetry=0.0), r"mixtures\.uniform: 'poetry' is not one of"),
    ("unknown objective", lambda c: c["runs"][0].update(objective="mlm"), r"runs\[0\]\.objective: 'mlm' is not one of"),
    (
        "unknown interval",
        lambda c: c["fit"]["scaling"].update(interval="conformal"),
        r"fit\.scaling\.interval: 'conformal' is not one of \['bootstrap', 'score_scatter', 'prediction'\]",
    ),
    (
        "unknown anchor",
        lambda c: c["fit"]["scaling"].update(ladder={"anchor": "sometimes"}),
        r"fit\.scaling\.ladder\.anchor: 'sometimes' is not one of \['auto', True, False\]",
    ),
    (
        "unknown task",
        lambda c: c["evaluation"]["tasks"].append("trivia"),
        r"evaluation\.tasks\[4\]: 'trivia': unknown task; .* close names: triviaqa",
    ),
    (
        "duplicate run",
        lambda c: c["runs"].append(dict(c["runs"][0])),
        rf"runs\[{len(DEFAULT['runs'])}\]\.name: duplicate run name 's-300k-uniform'",
    ),
    ("unknown size", lambda c: c["runs"][0].update(size="xl"), r"runs\[0\]\.size: unknown size 'xl'"),
    ("unknown mixture", lambda c: c["runs"][0].update(mixture="web"), r"runs\[0\]\.mixture: unknown mixture 'web'"),
    (
        "budget below a checkpoint",
        lambda c: c["runs"][0].update(tokens=1000),
        r"runs\[0\]\.tokens: 1000 tokens is below one training step per checkpoint",
    ),
    (
        "budget given twice",
        lambda c: c["runs"][0].update(tokens_per_param=20),
        r"runs\[0\]: give exactly one of tokens or tokens_per_param \(the training budget\), got tokens and tokens_per_param",
    ),
    (
        "no budget",
        lambda c: c["runs"][0].pop("tokens"),
        r"runs\[0\]: give exactly one of tokens or tokens_per_param .*got neither",
    ),
    (
        "tokens per param below a checkpoint",
        lambda c: (c["runs"][0].pop("tokens"), c["runs"][0].update(tokens_per_param=0.1)),
        r"runs\[0\]\.tokens_per_param: 2678 tokens is below one training step per checkpoint",
    ),
    (
        "no fact_qa eval entities",
        lambda c: c["world"].update(sft_entities=c["world"]["n_entities"]),
        r"world\.sft_entities: \d+ leaves none of the \d+ entities \(world\.n_entities\) for fact_qa's eval split",
    ),
    (
        "Q/A sentences about eval entities",
        lambda c: c["world"].update(qa_entities=c["world"]["sft_entities"] + 1),
        r"world\.qa_entities: \d+ is more than the \d+ SFT entities \(world\.sft_entities\)",
    ),
    (
        "fit prompt some task lacks",
        lambda c: c["fit"]["scaling"].update(prompt="question"),
        r"fit\.scaling\.prompt: 'question' is not a prompt of \['sentiment'\]; expected a mapping \{task: prompt\}",
    ),
    (
        "fit prompt mapping to no template",
        lambda c: c["fit"]["selection"].update(prompt={"fact_qa": "statment"}),
        r"fit\.selection\.prompt\.fact_qa: 'statment' is not one of fact_qa's prompts \['statement', 'question'\]",
    ),
    (
        "sft prompt for a task not fine-tuned",
        lambda c: c["sft"].update(prompt={"arc_easy": "arc"}),
        r"sft\.prompt\.arc_easy: not one of the tasks it applies to",
    ),
    (
        "segment of no checkpoints",
        lambda c: c["training"].update(checkpoints_per_segment=0),
        r"training\.checkpoints_per_segment: 0 is less than the minimum of 1",
    ),
    (
        "unknown schedule",
        lambda c: c["training"].update(schedule="step"),
        r"training\.schedule: 'step' is not one of \['cosine', 'wsd'\]",
    ),
    (
        "precision as YAML's bare no",
        lambda c: c["training"].update(precision=yaml.safe_load("no")),
        r"training\.precision: False is not one of \['fp32', 'bf16'\]",
    ),
    (
        "unknown precision",
        lambda c: c["training"].update(precision="fp16"),
        r"training\.precision: 'fp16' is not one of \['fp32', 'bf16'\]",
    ),
    (
        "rows too short for span corruption",
        lambda c: c["training"].update(seq_len=2),
        r"training\.seq_len: 2 is too short for span corruption \(the evaluation's span-corruption loss\); expected at least 3",
    ),
    (
        "wsd without decay",
        lambda c: (c["training"].update(schedule="wsd"), c["training"].pop("decay_frac")),
        r"training\.decay_frac: required by schedule 'wsd'",
    ),
    (
        "wsd phases overlap",
        lambda c: c["training"].update(schedule="wsd", warmup_frac=0.5, decay_frac=0.6),
        r"training: warmup_frac \+ decay_frac must be at most 1, got 0\.5 \+ 0\.6",
    ),
    (
        "too few sentinels",
        lambda c: (c["tokenizer"].update(sentinels=4), c["runs"][3].update(objective="ul2")),
        r"runs\[3\]\.objective: ul2 at seq_len 128 needs 7 sentinel tokens; tokenizer\.sentinels is 4",
    ),
    (
        "sft task not evaluated",
        lambda c: c["evaluation"].update(tasks=["arith_mc"]),
        r"sft\.tasks: \['fact_qa', 'sentiment', 'var_track'\] are not in evaluation\.tasks",
    ),
    (
        "lora without rank",
        lambda c: (c["sft"].update(methods=["full", "lora"]), c["sft"].pop("lora_r")),
        r"sft\.lora_r: required by sft method 'lora'",
    ),
    (
        "unknown sft method",
        lambda c: c["sft"].update(methods=["full", "lora", "prefix"]),
        r"sft\.methods\[2\]: 'prefix' is not one of",
    ),
    (
        "last layers beyond depth",
        lambda c: c["sft"].update(methods=["last_layers"], last_layers=3),
        r"sft\.last_layers: 3 exceeds sizes\.s\.n_layers \(2\)",
    ),
    (
        "pairwise group task not fine-tuned",
        lambda c: c["sft"].update(tasks=["fact_qa"]),
        r"fit\.pairwise\.task_groups\[0\]\.tasks: \['arith_mc', 'sentiment', 'var_track'\] are not in sft\.tasks",
    ),
    (
        "pairwise duplicate task group",
        lambda c: c["fit"]["pairwise"]["task_groups"].append({"name": "all", "tasks": ["fact_qa"]}),
        r"fit\.pairwise\.task_groups\[5\]\.name: duplicate task group 'all'",
    ),
    (
        "pairwise sft method not run",
        lambda c: c["fit"]["pairwise"].update(sft_method="last_layers"),
        r"fit\.pairwise\.sft_method: 'last_layers' is not in sft\.methods",
    ),
    (
        "pairwise multitask without multitask sft",
        lambda c: (c["sft"].update(multitask=False), c["fit"]["pairwise"].update(sft_data="multitask")),
        r"fit\.pairwise\.sft_data: 'multitask' needs sft\.multitask",
    ),
    (
        "pairwise unknown learned proxies",
        lambda c: c["fit"]["pairwise"].update(learned_proxies="some"),
        r"fit\.pairwise\.learned_proxies: 'some' is not valid; expected 'all' or a list of proxy names",
    ),
    (
        "pairwise unknown budget column",
        lambda c: c["fit"]["pairwise"].update(compare_within=["colour"]),
        r"fit\.pairwise\.compare_within: \['colour'\] is not valid",
    ),
    (
        "pairwise unknown recipe column",
        lambda c: c["fit"]["pairwise"]["decision"].update(recipe=["colour"]),
        r"fit\.pairwise\.decision\.recipe\[0\]: 'colour' is not one of",
    ),
    (
        "sft checkpoints neither a choice nor k",
        lambda c: c["sft"].update(checkpoints="first"),
        r"sft\.checkpoints: 'first' is not valid; expected 'last', 'all', or an integer k >= 1",
    ),
    (
        "unknown held-out run",
        lambda c: c["fit"]["scaling"].update(holdout=["l-900k-uniform", "xl-1"]),
        r"fit\.scaling\.holdout\[1\]: unknown run 'xl-1'; expected a name from runs",
    ),
    (
        "forecast of a mixture without runs",
        lambda c: c["fit"]["scaling"].update(
            forecast=[{"name": "xl", "n_params": 1e9, "tokens": 2e10, "mixture": "code", "flops": 1.2e20}]
        ),
        r"fit\.scaling\.forecast\[0\]: mixture 'code' has no runs; expected one of \['facts_heavy', 'uniform'\]",
    ),
    (
        "forecast named as a trained run",
        lambda c: c["fit"]["scaling"].update(
            forecast=[{"name": "l-900k-uniform", "n_params": 1e9, "tokens": 2e10, "mixture": "uniform", "flops": 1.2e20}]
        ),
        r"fit\.scaling\.forecast\[0\]: name 'l-900k-uniform' is taken",
    ),
    (
        "forecast without tokens",
        lambda c: c["fit"]["scaling"].update(forecast=[{"name": "xl", "n_params": 1e9, "mixture": "uniform"}]),
        r"fit\.scaling\.forecast\[0\]: 'tokens' is a required property",
    ),
    (
        "forecast in a trained sweep without its compute",
        lambda c: c["fit"]["scaling"].update(forecast=[{"name": "xl", "n_params": 1e9, "tokens": 2e10, "mixture": "uniform"}]),
        r"fit\.scaling\.forecast\[0\]: no flops; expected the planned run's training compute",
    ),
    (
        "unknown predictor",
        lambda c: c["fit"]["scaling"]["predictors"].append("gpt"),
        r"fit\.scaling\.predictors\[5\]: 'gpt' is not one of",
    ),
    ("sft every 0th checkpoint", lambda c: c["sft"].update(checkpoints=0), r"sft\.checkpoints: 0 is not valid"),
    (
        "selection source run unknown",
        lambda c: c["fit"]["selection"].update(source_runs=["nope"]),
        r"fit\.selection\.source_runs: \['nope'\] are not names of runs",
    ),
    (
        "selection without target",
        lambda c: c["fit"]["selection"].update(source_runs=[r["name"] for r in c["runs"]]),
        r"fit\.selection\.source_runs: lists every run, which leaves no held-out target run",
    ),
    (
        "selection fraction of 1",
        lambda c: c["fit"]["selection"].update(source_fraction=1.0),
        r"fit\.selection\.source_fraction: 1\.0 is greater than or equal to the maximum of 1",
    ),
    (
        "selection budget zero",
        lambda c: c["fit"]["selection"].update(budgets=[0, 5]),
        r"fit\.selection\.budgets\[0\]: 0 is less than the minimum of 1",
    ),
    (
        "relatedness shots not evaluated",
        lambda c: c["fit"]["relatedness"].update(shots=5),
        r"fit\.relatedness\.shots: 5 is not in evaluation\.shots \[0, 2\]",
    ),
    ("transfer metric unknown", lambda c: c["fit"]["transfer"].update(metric="f1"), r"fit\.transfer\.metric: 'f1' is not one of"),
    (
        "relatedness metric unknown",
        lambda c: c["fit"]["relatedness"].update(metric="f1"),
        r"fit\.relatedness\.metric: 'f1' is not a metric of task_scores; expected one of \['acc'",
    ),
]


def test_default_config_is_valid():
    assert validate(copy.deepcopy(DEFAULT)) == DEFAULT


def test_a_forecast_of_a_run_not_trained_is_valid_and_typed():
    from lmforecast.fits.scaling import PlannedRun, ScalingSettings

    config = copy.deepcopy(DEFAULT)
    planned = {"name": "xl-9m-uniform", "n_params": 2e6, "tokens": 9e6, "mixture": "uniform", "lr": 0.003, "flops": 1.2e14}
    config["fit"]["scaling"]["forecast"] = [planned]
    settings = ScalingSettings.from_dict(validate(config)["fit"]["scaling"])
    assert settings.forecast == (PlannedRun(**planned),)


@pytest.mark.parametrize("name,edit,message", CASES, ids=[c[0] for c in CASES])
def test_bad_config_names_the_field(name, edit, message):
    with pytest.raises(ConfigError, match=message):
        validate(broken(edit))


def test_smoke_config_is_valid_alone_and_merged_onto_the_default():
    from snakemake.utils import update_config  # what --configfile does with it

    smoke = load(ROOT / "tests" / "data" / "smoke.yaml", default=None)  # alone: not merged
    merged = copy.deepcopy(DEFAULT)
    update_config(merged, smoke)
    validate(merged)


def test_unreadable_yaml_names_the_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("runs: [unclosed")
    with pytest.raises(ConfigError, match="c.yaml: not valid YAML"):
        load(path)


def test_checkpoint_steps_are_even_and_end_at_the_budget():
    assert checkpoint_steps(600_000, Training.from_dict(DEFAULT["training"])) == [146, 292, 439, 585]


def test_tokens_per_param_counts_the_models_non_embedding_parameters():
    from lmforecast.train.model import Llama, ModelConfig

    config = copy.deepcopy(DEFAULT)
    config["runs"][0] = {**config["runs"][0], "tokens_per_param": 20}
    del config["runs"][0]["tokens"]
    validate(config)
    for name, size in config["sizes"].items():  # the count is the model's parameters but the (tied) embedding
        model = Llama(ModelConfig(vocab_size=528, seq_len=128, **size))
        nonembed = sum(p.numel() for p in model.parameters()) - 528 * size["d_model"]
        assert Size.from_dict(size).n_params_nonembed == nonembed, name
    spec = run_spec(config, config["runs"][0]["name"])  # size s: 26,784 non-embedding parameters
    assert spec["tokens"] == 20 * 26_784 and spec["steps_total"] == 20 * 26_784 // 1024
