import copy
from dataclasses import MISSING, fields
from pathlib import Path

import pytest
import yaml

from lmforecast import settings
from lmforecast.config import SCHEMA_PATH, evaluation_spec, pretrain_spec, run_spec, tokenizer_spec
from lmforecast.settings import ConfigError, Evaluation, Pretrain, Run, Training
from lmforecast.train import objectives

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
SCHEMA = yaml.safe_load(SCHEMA_PATH.read_text())["properties"]

# settings class -> its section of the schema, and the keys its rule adds to the section (or leaves out)
SECTIONS = [
    (settings.World, SCHEMA["world"], {}, ()),
    (settings.Tokenizer, SCHEMA["tokenizer"], {"seq_len"}, ()),
    (settings.Domain, SCHEMA["domains"]["additionalProperties"], {}, ()),
    (settings.Training, SCHEMA["training"], {}, ()),
    (settings.Size, SCHEMA["sizes"]["additionalProperties"], {}, ()),
    (settings.Evaluation, SCHEMA["evaluation"], {"domain_docs"}, ("task_data",)),
    (settings.Sft, SCHEMA["sft"], {}, ()),
    (settings.External, SCHEMA["external"]["items"], {}, ()),
]


@pytest.mark.parametrize("cls,section,added,left_out", SECTIONS, ids=[s[0].__name__ for s in SECTIONS])
def test_fields_are_the_schemas_keys_and_defaults_are_its_optional_ones(cls, section, added, left_out):
    keys = (set(section["properties"]) | set(added)) - set(left_out)
    assert {f.name for f in fields(cls)} == keys
    required = {f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING}
    assert required == (set(section["required"]) | set(added)) - set(left_out)


def test_a_run_spec_is_read_whichever_budget_the_config_gives():
    config = copy.deepcopy(DEFAULT)
    config["runs"][0] = {**config["runs"][0], "tokens_per_param": 20}
    del config["runs"][0]["tokens"]
    by_ratio, by_tokens = (Run.from_dict(run_spec(config, r["name"])) for r in config["runs"][:2])
    assert by_ratio.tokens_per_param == 20 and by_ratio.tokens == 20 * by_ratio.size.n_params_nonembed
    assert by_tokens.tokens_per_param is None and by_tokens.tokens == 300_000
    assert by_tokens.size.ffn_ratio == 3.0 and by_tokens.mixture == config["mixtures"]["facts_heavy"]


def test_the_stage_slices_of_the_default_config_read():
    assert Evaluation.from_dict(evaluation_spec(DEFAULT)).domain_docs == DEFAULT["world"]["valid_docs"]
    assert settings.Tokenizer.from_dict(tokenizer_spec(DEFAULT)).seq_len == DEFAULT["training"]["seq_len"]


def test_unknown_and_missing_keys_are_named():
    with pytest.raises(ConfigError, match=r"Training settings: unknown key\(s\) \['lr_decay'\]; expected one of \['batch_size'"):
        Training.from_dict({**DEFAULT["training"], "lr_decay": 0.5})
    with pytest.raises(ConfigError, match=r"Sft settings: missing key\(s\) \['steps'\]"):
        settings.Sft.from_dict({k: v for k, v in DEFAULT["sft"].items() if k != "steps"})
    spec = pretrain_spec(DEFAULT, DEFAULT["runs"][0]["name"])
    with pytest.raises(ConfigError, match=r"Size settings: unknown key\(s\) \['width'\]"):
        Pretrain.from_dict({**spec, "run": {**spec["run"], "size": {**spec["run"]["size"], "width": 1}}})
    with pytest.raises(ConfigError, match=r"Pretrain settings: unknown key\(s\) \['config_hash'\]"):
        Pretrain.from_dict({**spec, "config_hash": "0"})  # computed from the spec, never given


def test_checkpoint_config_hash_is_what_it_was_before_typed_settings():
    """The manifests' config hash of the default config's runs (values written before lmforecast/settings.py):
    changing them would refuse to resume every checkpoint trained before."""
    hashes = {r["name"]: Pretrain.from_dict(pretrain_spec(DEFAULT, r["name"])).config_hash for r in DEFAULT["runs"]}
    assert hashes["s-300k-uniform"] == "0628f8bdcbafbf78"
    assert hashes["s-900k-uniform"] == "53f73c4031ac6499"
    assert len(set(hashes.values())) == len(hashes)


def test_checkpoint_config_hash_ignores_the_default_precision_and_the_grouping_into_jobs():
    spec = pretrain_spec(DEFAULT, DEFAULT["runs"][0]["name"])
    base = Pretrain.from_dict(spec).config_hash

    def with_training(**kw):
        return Pretrain.from_dict({**spec, "training": {**spec["training"], **kw}}).config_hash

    assert with_training(precision="fp32") == with_training(checkpoints_per_segment=1) == base
    assert with_training(precision="bf16") != base and with_training(grad_clip=0.5) != base


def test_the_schema_offers_exactly_the_objectives():
    assert SCHEMA["runs"]["items"]["properties"]["objective"]["enum"] == list(objectives.OBJECTIVES)
