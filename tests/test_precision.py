"""Evaluate and SFT in bf16 (evaluation.precision, sft.precision) on the CPU: the code path a GPU job takes,
placed by LM.place; the fp32 default is checked byte-for-byte by the existing evaluate and SFT tests."""

import re

import pytest

from lmforecast.data import tokenizer as tokenizer_lib
from lmforecast.data.world import domain_documents, task_examples
from lmforecast.measure.evaluate import evaluate_checkpoint
from lmforecast.measure.lm import LlamaLM
from lmforecast.measure.sft import run_sft
from lmforecast.measure.tasks import load_task
from lmforecast.settings import Evaluation, Sft
from lmforecast.train.model import Llama, ModelConfig

SFT = {"tasks": ["sentiment"], "checkpoints": "last", "methods": ["full"], "multitask": False, "steps": 3}
SFT |= {"batch_size": 4, "lr": 1e-3, "seed": 0, "examples_per_task": 8}


def lm(tokenizer_dir):
    import torch

    tok = tokenizer_lib.load(tokenizer_dir)
    torch.manual_seed(0)
    cfg = ModelConfig(d_model=32, n_layers=2, n_heads=2, vocab_size=tok.get_vocab_size(), seq_len=64, eos_token_id=0)
    return LlamaLM(Llama(cfg), tok)


def test_bf16_scoring_agrees_with_fp32_and_logs_examples_per_second(tiny_world, tiny_tokenizer):
    documents = {d: domain_documents(tiny_world, d, "valid")[:3] for d in ("facts", "code")}
    tasks = {"fact_qa": (load_task("resources/tasks/fact_qa.yaml"), task_examples(tiny_world, "fact_qa"))}
    out, logged = {}, []
    for precision in ("fp32", "bf16"):
        cfg = {"tasks": ["fact_qa"], "shots": [0], "examples_per_task": 8, "fewshot_seed": 1, "domain_docs": 3}
        cfg = Evaluation.from_dict({**cfg, "precision": precision})
        model = lm(tiny_tokenizer).place(precision)
        out[precision] = evaluate_checkpoint(model, {"run": "r", "step": 1}, documents, tasks, cfg, log=logged.append)
    fp32, bf16 = (out[p]["domain_losses"].to_pylist() for p in ("fp32", "bf16"))
    for a, b in zip(fp32, bf16):  # bf16 keeps 8 bits of mantissa: ~0.4% per value, less in the mean
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-2)
        assert b["span_corruption_loss"] == pytest.approx(a["span_corruption_loss"], rel=1e-2)
    assert sum(bool(re.search(r"r step 1: \d+ task examples in [\d.]+ s, [\d.]+ examples/s", m)) for m in logged) == 2


def test_bf16_sft_trains_under_autocast_and_scores(tiny_world, tiny_tokenizer):
    import torch

    base = lm(tiny_tokenizer).place()
    tasks = {"sentiment": (load_task("resources/tasks/sentiment.yaml"), task_examples(tiny_world, "sentiment"))}
    logged = []
    scores, _ = run_sft(base, {"run": "r", "step": 1}, tasks, Sft.from_dict({**SFT, "precision": "bf16"}), "full", logged.append)
    assert scores.num_rows > 0 and any("sft step 3/3 loss" in m for m in logged)
    assert base.model.model.embed_tokens.weight.dtype == torch.float32  # the base stays float32; its copies train
