from dataclasses import replace

import numpy as np
import polars as pl
import pytest
import torch
from transformers import AutoModelForCausalLM

from lmforecast.data import tokenizer as tokenizer_lib
from lmforecast.data.shards import encode_documents
from lmforecast.data.world import domain_documents, task_examples
from lmforecast.measure.evaluate import score_requests
from lmforecast.measure.lm import load_lm
from lmforecast.measure.sft import fine_tune, finish, prepare, run_sft, sft_batches
from lmforecast.measure.tasks import Task, build_requests
from lmforecast.settings import Pretrain, Sft, World
from lmforecast.train.loop import train_segment
from lmforecast.train.model import save_model

SENTIMENT = Task(
    name="sentiment",
    domain="prose",
    prompts={"label": "Review: {review}\nSentiment:"},
    fewshot_split="sft",
    eval_split="eval",
    target_delimiter=" ",
    fewshot_delimiter="\n\n",
)
CFG = Sft.from_dict(
    {
        "tasks": ["sentiment"],
        "checkpoints": "last",
        "methods": ["full", "lora", "last_layers"],
        "steps": 80,
        "batch_size": 16,
        "lr": 3e-3,
        "seed": 0,
        "examples_per_task": 60,
        "lora_r": 8,
        "lora_alpha": 16,
        "last_layers": 1,
        "multitask": False,
        "prompt": None,
    }
)
WORLD = World(seed=0, n_entities=12, train_docs=400, valid_docs=5, sft_examples=120, eval_examples=60)


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """A small model pre-trained on the prose domain only, so it has learned the adjectives."""
    d = tmp_path_factory.mktemp("sft")
    docs = domain_documents(WORLD, "prose", "train")
    tokenizer_lib.save_hf(tokenizer_lib.train_tokenizer(docs, 300, sentinels=16), d / "tok", model_max_length=64)
    tok = tokenizer_lib.load(d / "tok")
    np.save(d / "prose.npy", encode_documents(tok, docs, 0))
    run = {
        "name": "p",
        "size": {"d_model": 32, "n_layers": 2, "n_heads": 2},
        "size_name": "s",
        "mixture": {"prose": 1.0},
        "mixture_name": "prose",
        "objective": "clm",
        "lr": 5e-3,
        "seed": 0,
        "tokens": 500 * 8 * 64,
        "steps_total": 500,
    }
    training = {
        "seq_len": 64,
        "batch_size": 8,
        "schedule": "cosine",
        "warmup_frac": 0.05,
        "min_lr_frac": 0.1,
        "weight_decay": 0.1,
        "grad_clip": 1.0,
        "checkpoints": 1,
        "log_every": 1000,
    }
    train_segment(
        Pretrain.from_dict({"run": run, "training": training}),
        0,
        500,
        {"prose": d / "prose.npy"},
        d / "tok",
        None,
        d / "ckpt",
        log=lambda m: None,
    )
    lm = load_lm(d / "ckpt")
    assert (lm.start_id, lm.max_len) == (0, 64)
    return lm, {"sentiment": (SENTIMENT, task_examples(WORLD, "sentiment"))}


def accuracy(lm, tasks):
    task, examples = tasks["sentiment"]
    metrics = score_requests(lm, build_requests(task, examples, ["label"], [0], limit=60))
    return float(np.mean([m["acc"] for m in metrics]))


@pytest.mark.parametrize("method", ["full", "lora"])
def test_sft_raises_accuracy_over_zero_shot(pretrained, method):
    lm, tasks = pretrained
    scores, examples = run_sft(lm, {"run": "p", "step": 150}, tasks, CFG, method, log=lambda m: None)
    after = pl.from_arrow(scores).filter(pl.col("metric") == "acc")["value"][0]
    before = accuracy(lm, tasks)
    assert after > before + 0.1, (method, before, after)
    # The per-example rows are the same examples and average to the same accuracy.
    examples = pl.from_arrow(examples)
    assert examples.height == 60 and examples["example"].n_unique() == 60
    assert examples["correct"].mean() == pytest.approx(after)


def test_lora_trains_only_adapters_and_merges_into_a_transformers_checkpoint(pretrained, tmp_path):
    lm, tasks = pretrained
    import copy

    base = {k: v.clone() for k, v in lm.model.state_dict().items()}
    peft_model = prepare(copy.deepcopy(lm.model), "lora", CFG)
    trainable = {n for n, p in peft_model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    data = sft_batches(lm, SENTIMENT, tasks["sentiment"][1], "label")
    fine_tune(peft_model, data, CFG, 0, log=lambda m: None)
    frozen = {
        n.replace("base_model.model.", "").replace(".base_layer", ""): p
        for n, p in peft_model.named_parameters()
        if "lora_" not in n
    }
    assert all(torch.equal(p, base[n]) for n, p in frozen.items())
    merged = finish(peft_model, "lora")
    assert any(not torch.equal(v, base[k]) for k, v in merged.state_dict().items())
    save_model(merged, tmp_path)
    hf = AutoModelForCausalLM.from_pretrained(tmp_path)
    x = torch.randint(0, 300, (2, 20))
    with torch.no_grad():
        assert torch.allclose(merged(x), hf(x).logits, atol=1e-5)


@pytest.mark.parametrize("method", ["full", "lora"])
def test_same_checkpoint_task_method_and_seed_give_identical_scores(pretrained, method):
    lm, tasks = pretrained
    cfg = replace(CFG, steps=10, multitask=True)
    torch.manual_seed(123)  # whatever the global RNG holds before, the result must not change
    a = run_sft(lm, {"run": "p", "step": 150}, tasks, cfg, method, log=lambda m: None)
    torch.rand(7)
    b = run_sft(lm, {"run": "p", "step": 150}, tasks, cfg, method, log=lambda m: None)
    assert a[0].equals(b[0]) and a[1].equals(b[1])


def test_last_layers_trains_only_the_top_blocks_the_final_norm_and_the_head(pretrained):
    import copy

    lm, tasks = pretrained
    base = {k: v.clone() for k, v in lm.model.state_dict().items()}
    tuned = copy.deepcopy(lm.model)
    data = sft_batches(lm, SENTIMENT, tasks["sentiment"][1], "label")
    finish(fine_tune(prepare(tuned, "last_layers", CFG), data, replace(CFG, steps=5), 0, log=lambda m: None), "last_layers")
    changed = {k for k, v in tuned.state_dict().items() if not torch.equal(v, base[k])}
    allowed = {
        k
        for k in base
        if k.startswith("model.layers.1.") or k.startswith("model.norm") or k in ("lm_head.weight", "model.embed_tokens.weight")
    }
    assert changed and changed <= allowed
    assert any(k.startswith("model.layers.1.") for k in changed)


def test_the_config_and_the_cli_offer_exactly_the_sft_methods():
    from lmforecast import config
    from lmforecast.cli import main
    from lmforecast.measure import SFT_METHODS

    assert config.schema()["$defs"]["sft_method"]["enum"] == list(SFT_METHODS)
    with pytest.raises(SystemExit):  # argparse: an invalid choice
        main(
            [
                "sft",
                "--spec",
                "{}",
                "--checkpoint",
                "c",
                "--method",
                "adapter",
                "--task-specs",
                "t",
                "--task-examples",
                "e",
                "--out",
                "o",
                "--example-scores",
                "x",
            ]
        )


def test_sft_prompt_is_a_name_a_mapping_per_task_or_the_first_template():
    from lmforecast.measure.sft import _prompt
    from lmforecast.measure.tasks import load_task

    fact_qa, sentiment = load_task("resources/tasks/fact_qa.yaml"), load_task("resources/tasks/sentiment.yaml")
    assert _prompt(fact_qa, replace(CFG, prompt=None)) == "statement"
    assert _prompt(fact_qa, replace(CFG, prompt="question")) == "question"
    mapping = replace(CFG, prompt={"fact_qa": "question"})
    assert _prompt(fact_qa, mapping) == "question" and _prompt(sentiment, mapping) == next(iter(sentiment.prompts))
