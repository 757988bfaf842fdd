import math

import polars as pl
import pytest
import torch
import torch.nn.functional as F
from reference import assert_scores_match_separate_sequences

from lmforecast.data import tokenizer as tokenizer_lib
from lmforecast.data.world import domain_documents, task_examples
from lmforecast.measure.evaluate import domain_losses, evaluate_checkpoint, score_requests
from lmforecast.measure.lm import LlamaLM, load_lm
from lmforecast.measure.scoring import choice_metrics, encode_pair
from lmforecast.measure.tasks import build_requests, load_task
from lmforecast.settings import Evaluation
from lmforecast.tables import first_prompt
from lmforecast.train.checkpoint import write_manifest
from lmforecast.train.model import Llama, ModelConfig, save_model


def _model(tok, seq_len=64, seed=0):
    torch.manual_seed(seed)
    return Llama(
        ModelConfig(
            vocab_size=tok.get_vocab_size(),
            d_model=32,
            n_layers=2,
            n_heads=2,
            seq_len=seq_len,
            eos_token_id=tokenizer_lib.eos_id(tok),
        )
    )


def _lm(tok):
    lm = LlamaLM(_model(tok), tok)
    assert (lm.start_id, lm.max_len) == (tokenizer_lib.eos_id(tok), 64)
    return lm


def _token_losses(model, ids):
    """Per-token cross entropy (nats) of ids[1:] given the earlier tokens: one plain forward pass."""
    with torch.no_grad():
        logits = model(torch.tensor([ids[:-1]]))[0]
    return F.cross_entropy(logits.double(), torch.tensor(ids[1:]), reduction="none")


def test_bits_per_byte_by_hand(tiny_tokenizer):
    tok = tokenizer_lib.load(tiny_tokenizer)
    eos = tokenizer_lib.eos_id(tok)
    lm = _lm(tok)
    doc = "Tomar lives in Belfa. Café 7 + 5 = 12."  # "é" is 2 bytes in UTF-8
    ids = [eos] + tok.encode(doc).ids
    assert len(ids) - 1 <= 64  # one window
    nats = float(_token_losses(lm.model, ids).sum())
    (row,) = domain_losses(lm, {"facts": [doc]})
    assert len(doc) == 38 and row["bytes"] == 39
    assert row["tokens"] == len(ids) - 1
    assert row["loss"] == pytest.approx(nats / (len(ids) - 1), rel=1e-6)
    assert row["bits_per_byte"] == pytest.approx(nats / 39 / math.log(2), rel=1e-6)


def test_checkpoint_domain_losses_and_task_scores_by_independent_computation(tiny_world, tiny_tokenizer, tmp_path):
    tok = tokenizer_lib.load(tiny_tokenizer)
    save_model(_model(tok), tmp_path)
    tokenizer_lib.save_hf(tok, tmp_path, model_max_length=64)
    write_manifest(tmp_path, "r", 1, {})
    lm = load_lm(tmp_path)  # as the evaluate job loads a checkpoint
    model, tok = lm.model, lm.tokenizer
    eos, max_len = tokenizer_lib.eos_id(tok), model.cfg.seq_len
    documents = {d: domain_documents(tiny_world, d, "valid")[:3] for d in ("facts", "code")}
    task = load_task("resources/tasks/fact_qa.yaml")
    examples = task_examples(tiny_world, "fact_qa")
    cfg = Evaluation.from_dict(
        {"tasks": ["fact_qa"], "shots": [0, 2], "examples_per_task": 6, "fewshot_seed": 1234, "domain_docs": 3}
    )
    out = evaluate_checkpoint(lm, {"run": "r", "step": 1}, documents, {"fact_qa": (task, examples)}, cfg)

    losses = {row["domain"]: row for row in out["domain_losses"].to_pylist()}
    windowed = 0
    for domain, docs in documents.items():
        token_losses = []
        for doc in docs:
            ids = [eos] + tok.encode(doc).ids
            windowed += len(ids) - 1 > max_len  # long documents are scored in windows of max_len predicted tokens
            for s in range(0, len(ids) - 1, max_len):
                token_losses.append(_token_losses(model, ids[s : s + max_len + 1]))
        token_losses = torch.cat(token_losses)
        assert losses[domain]["loss"] == pytest.approx(float(token_losses.mean()), rel=1e-6)
        assert losses[domain]["tokens"] == len(token_losses)
    assert windowed

    # Task scores: every choice scored as its own sequence, lm-eval style, then averaged per (prompt, shots).
    requests = build_requests(task, examples, list(task.prompts), cfg.shots, limit=6, seed=1234)
    expected, gold = {}, {}
    for req in requests:
        lps, ntok = [], []
        for cont in req.continuations:
            seq, start = encode_pair(lm, req.context, cont)
            seq, start = seq[-(max_len + 1) :], max(1, start - max(0, len(seq) - (max_len + 1)))
            lps.append(-float(_token_losses(model, seq)[start - 1 :].sum()))
            ntok.append(len(seq) - start)
        expected.setdefault((req.prompt, req.shots), []).append(choice_metrics(lps, ntok, req.choices, req.gold))
        gold[(req.prompt, req.shots, req.example)] = (lps[req.gold], ntok[req.gold])
    scores = out["task_scores"].to_pylist()
    assert len(scores) == len(expected) * 10
    for row in scores:
        if row["metric"] == "inv_ppl_correct":  # pooled over the gold answers' tokens, as a corpus perplexity
            pooled = [v for k, v in gold.items() if k[:2] == (row["prompt"], row["shots"])]
            value = math.exp(sum(lp for lp, _ in pooled) / sum(n for _, n in pooled))
            assert row["value"] == pytest.approx(value, rel=1e-4), row
            continue
        values = [m[row["metric"]] for m in expected[(row["prompt"], row["shots"])]]
        assert row["value"] == pytest.approx(sum(values) / len(values), rel=1e-4, abs=1e-6), row
    for row in out["example_scores"].to_pylist():  # the answer's cloze perplexity, per token
        lp, n = gold[(row["prompt"], row["shots"], row["example"])]
        assert row["tokens_correct"] == n and row["ppl_correct"] == pytest.approx(math.exp(-lp / n), rel=1e-4)

    # Both tables list the prompts in the task's YAML order, so the fits' default (each task's first
    # prompt in the table) is the same prompt whichever table a fit reads.
    task_scores, example_scores = pl.from_arrow(out["task_scores"]), pl.from_arrow(out["example_scores"])
    assert task_scores["prompt"].unique(maintain_order=True).to_list() == list(task.prompts)
    assert set(first_prompt(task_scores)["prompt"]) == set(first_prompt(example_scores)["prompt"]) == {next(iter(task.prompts))}


def test_score_requests_in_float64_equals_separate_sequences_exactly_enough_for_argmax(tiny_world, tiny_tokenizer):
    tok = tokenizer_lib.load(tiny_tokenizer)
    lm = _lm(tok)
    lm.model.double()
    requests = []
    for name in ("fact_qa", "arith_mc", "sentiment"):
        task = load_task(f"resources/tasks/{name}.yaml")
        requests += build_requests(task, task_examples(tiny_world, name), list(task.prompts), [0, 1], limit=5)
    assert_scores_match_separate_sequences(lm, requests, score_requests(lm, requests))


def test_span_corruption_loss_equals_each_row_scored_alone(tiny_world, tiny_tokenizer):
    from lmforecast.measure.evaluate import SPAN_EVAL_SEED
    from lmforecast.train.objectives import heldout_span_corruption

    tok = tokenizer_lib.load(tiny_tokenizer)
    eos, sentinels = tokenizer_lib.eos_id(tok), tokenizer_lib.sentinel_ids(tok)
    lm = _lm(tok)
    model = lm.model
    docs = domain_documents(tiny_world, "code", "valid")[:4]
    (row,) = domain_losses(lm, {"code": docs})

    nats = []
    for d, doc in enumerate(docs):
        for seq, p in heldout_span_corruption([eos] + tok.encode(doc).ids, 64, sentinels, SPAN_EVAL_SEED, d):
            assert len(seq) <= 65 and any(t in sentinels for t in seq[:p])
            n = len(seq) - 1  # one row, no padding; the mask written out as loops
            mask = torch.tensor([[j <= i or j < p for j in range(n)] for i in range(n)])
            with torch.no_grad():
                logits = model(torch.as_tensor(seq[:-1])[None], attn_mask=mask[None, None])[0]
            nats.append(F.cross_entropy(logits[p - 1 :].double(), torch.tensor(seq[p:]), reduction="none"))
    nats = torch.cat(nats)
    assert row["span_corruption_loss"] == pytest.approx(float(nats.mean()), rel=1e-5)


def test_fewshot_limit_scores_k_shot_prompts_on_the_first_examples_only(tiny_world):
    """evaluation.fewshot_examples_per_task: zero-shot on every example, k-shot on the first N, same demonstrations."""
    task = load_task("resources/tasks/fact_qa.yaml")
    examples = task_examples(tiny_world, "fact_qa")
    prompts = list(task.prompts)
    every = build_requests(task, examples, prompts, [0, 2], limit=6, seed=1234)
    limited = build_requests(task, examples, prompts, [0, 2], limit=6, seed=1234, fewshot_limit=2)
    assert [r for r in limited if r.shots == 0] == [r for r in every if r.shots == 0]
    assert len([r for r in limited if r.shots == 0]) == 6 * len(prompts)
    eval_ids = [x["id"] for x in examples if x["split"] == task.eval_split][:2]
    assert [r for r in limited if r.shots == 2] == [r for r in every if r.shots == 2 and r.example in eval_ids]
    assert len([r for r in limited if r.shots == 2]) == 2 * len(prompts)
