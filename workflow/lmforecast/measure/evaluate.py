"""Evaluate one checkpoint: domain losses on held-out text, and multiple-choice task scores.

Writes three per-checkpoint tables (domain_losses, task_scores, example_scores) that
the aggregate stage concatenates. Every model is scored as a causal LM, whatever its
pre-training objective (as UL2 and T5-decoder work evaluate); the span-corruption loss
of the held-out text is measured besides, as seed 000's proxy.
"""

import math
from collections import defaultdict

import numpy as np
import torch
import torch.nn.functional as F

from lmforecast.train import objectives
from lmforecast import tables
from lmforecast.data.tokenizer import sentinel_ids
from lmforecast.measure.scoring import choice_metrics, encode_choices, group_logprobs, span_logprobs
from lmforecast.measure.tasks import build_requests
from lmforecast.settings import Evaluation

# The per-example proxies that are averaged into task_scores (metric names as in lm-eval / DataDecide).
TASK_METRICS = ("acc", "acc_norm", "correct_prob", "correct_prob_per_token", "correct_prob_per_char",
                "margin", "norm_correct_prob", "logprob_correct", "bits_per_byte")


SPAN_EVAL_SEED = 0  # the held-out text's span corruption, the same for every checkpoint


def domain_losses(model, tok, eos, documents: dict, max_len: int):
    """Per domain: mean nats per token and bits per byte over held-out documents, and the span-corruption loss.

    A document is scored as EOS + its tokens, split into windows of max_len predicted
    tokens, each window conditioned only on its own earlier tokens.
    """
    rows = []
    sentinels = sentinel_ids(tok)
    for domain, docs in documents.items():
        sequences, starts, documents_ids = [], [], []
        for enc in tok.encode_batch(docs):
            ids = [eos] + enc.ids
            documents_ids.append(ids)
            for s in range(0, len(ids) - 1, max_len):
                sequences.append(ids[s : s + max_len + 1])
                starts.append(1)
        scored = span_logprobs(model, sequences, starts, max_len)
        nats = -sum(lp for lp, _, _ in scored)
        n_tokens = sum(n for _, n, _ in scored)
        n_bytes = sum(len(d.encode("utf-8")) for d in docs)
        rows.append({"domain": domain, "loss": nats / n_tokens, "bits_per_byte": nats / n_bytes / math.log(2),
                     "tokens": n_tokens, "bytes": n_bytes,
                     "span_corruption_loss": span_corruption_loss(model, documents_ids, sentinels, eos, max_len)})
    return rows


@torch.no_grad()
def span_corruption_loss(model, documents_ids, sentinels, pad: int, max_len: int, batch_tokens: int = 16384) -> float:
    """Mean nats per target token of the documents' fixed span corruption (T5's: mean span 3, density 0.15).

    Each chunk's corrupted input is the prefix (attended bidirectionally) and the model predicts
    "sentinel_0 span_0 sentinel_1 ...", as the span_corruption objective trains it. NaN for a
    tokenizer without sentinel tokens (nothing to measure).
    """
    if not sentinels:
        return math.nan
    rows = [row for d, ids in enumerate(documents_ids)
            for row in objectives.heldout_span_corruption(ids, max_len, sentinels, SPAN_EVAL_SEED, d)]
    model.eval()
    nats, n = 0.0, 0
    per_batch = max(1, batch_tokens // max_len)
    for i in range(0, len(rows), per_batch):
        batch = rows[i : i + per_batch]
        ids, mask, labels = objectives.to_batch(batch, max(len(seq) for seq, _ in batch) - 1, pad)
        scored = labels != objectives.IGNORE
        # The output head only at target positions (the corrupted input's positions predict nothing).
        logits = model.lm_head(model.hidden(ids, attn_mask=mask)[scored])
        losses = F.cross_entropy(logits.float(), labels[scored], reduction="none")
        nats += float(losses.double().sum())
        n += int(scored.sum())
    return nats / n


def score_requests(model, tok, eos, requests, max_len: int):
    """Per request, the metrics of choice_metrics; each request's context is run once for all its choices."""
    groups = [encode_choices(tok, eos, req.context, req.continuations) for req in requests]
    results = []
    for req, scored in zip(requests, group_logprobs(model, groups, max_len)):
        lps = [lp for lp, _, _ in scored]
        ntok = [n for _, n, _ in scored]
        results.append(choice_metrics(lps, ntok, req.choices, req.gold))
    return results


def summarize(requests, metrics, keys):
    """task_scores rows: each metric averaged over the examples of one (task, prompt, shots).

    Groups keep the requests' order (tasks, then prompts as the task's YAML lists them), as
    example_scores does: the fits' default prompt is each task's first one in the table, which
    is then the same prompt in both tables.
    """
    groups = defaultdict(list)
    for req, m in zip(requests, metrics):
        groups[(req.task, req.prompt, req.shots)].append((req, m))
    rows = []
    for (task, prompt, shots), items in groups.items():
        chance = float(np.mean([1.0 / len(req.continuations) for req, _ in items]))
        values = {metric: float(np.mean([m[metric] for _, m in items])) for metric in TASK_METRICS}
        # The answers' cloze perplexity pooled over their tokens (as a corpus perplexity), inverted so that
        # higher is better like the other proxies (and like inv_ppl of the held-out text).
        tokens = sum(m["tokens_correct"] for _, m in items)
        values["inv_ppl_correct"] = math.exp(sum(m["logprob_correct"] for _, m in items) / tokens) if tokens else math.nan
        for metric, value in values.items():
            rows.append({**keys, "task": task, "prompt": prompt, "shots": shots, "metric": metric,
                         "value": value, "n": len(items), "chance": chance})
    return rows


def example_rows(requests, metrics, keys):
    return [
        {**keys, "task": req.task, "prompt": req.prompt, "shots": req.shots, "example": req.example,
         "correct": m["acc"] == 1.0, "correct_norm": m["acc_norm"] == 1.0,
         "logprob_correct": m["logprob_correct"], "prob_correct_norm": m["norm_correct_prob"],
         "ppl_correct": m["ppl_correct"], "tokens_correct": m["tokens_correct"]}
        for req, m in zip(requests, metrics)
    ]


def evaluate_checkpoint(model, tok, eos, keys: dict, documents: dict, tasks: dict, cfg: Evaluation, max_len: int):
    """All three per-checkpoint tables. tasks: name -> (Task, examples); cfg: the evaluation settings."""
    requests = []
    for name, (task, examples) in tasks.items():
        prompts = cfg.prompts_for(name, list(task.prompts))
        requests += build_requests(task, examples, prompts, cfg.shots, limit=cfg.examples_per_task, seed=cfg.fewshot_seed,
                                   fewshot_limit=cfg.fewshot_examples_per_task)
    metrics = score_requests(model, tok, eos, requests, max_len)
    losses = [{**keys, **row} for row in domain_losses(model, tok, eos, documents, max_len)]
    return {
        "domain_losses": tables.to_table("domain_losses", tables.rows_to_columns(losses, "domain_losses")),
        "task_scores": tables.to_table("task_scores", tables.rows_to_columns(summarize(requests, metrics, keys), "task_scores")),
        "example_scores": tables.to_table("example_scores", tables.rows_to_columns(example_rows(requests, metrics, keys), "example_scores")),
    }
