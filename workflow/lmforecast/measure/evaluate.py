"""Evaluate one checkpoint: domain losses on held-out text, and multiple-choice task scores.

Writes three per-checkpoint tables (domain_losses, task_scores, example_scores) that
the aggregate stage concatenates. Every model is scored as a causal LM, whatever its
pre-training objective (as UL2 and T5-decoder work evaluate); the span-corruption loss
of the held-out text is measured besides, as Zeng et al.'s proxy.
"""

import math
import time
from collections import defaultdict

import numpy as np
import torch
import torch.nn.functional as F

from lmforecast import tables
from lmforecast.data.tokenizer import sentinel_ids
from lmforecast.measure.scoring import choice_metrics, device_of
from lmforecast.measure.tasks import TASK_METRICS, build_requests
from lmforecast.settings import Evaluation
from lmforecast.train import objectives

SPAN_EVAL_SEED = 0  # the held-out text's span corruption, the same for every checkpoint


def domain_losses(lm, documents: dict):
    """Per domain: mean nats per token and bits per byte over held-out documents, and the span-corruption loss.

    Documents are scored by lm.loglikelihood_rolling (in windows of lm.max_len predicted tokens);
    the nats and tokens of a domain are pooled over all its documents' windows.
    """
    rows = []
    sentinels = sentinel_ids(lm)
    for domain, docs in documents.items():
        windows = [w for doc in lm.loglikelihood_rolling(docs) for w in doc]
        nats = -sum(lp for lp, _ in windows)
        n_tokens = sum(n for _, n in windows)
        n_bytes = sum(len(d.encode("utf-8")) for d in docs)
        rows.append(
            {
                "domain": domain,
                "loss": nats / n_tokens,
                "bits_per_byte": nats / n_bytes / math.log(2),
                "tokens": n_tokens,
                "bytes": n_bytes,
                "span_corruption_loss": span_corruption_loss(lm, docs, sentinels),
            }
        )
    return rows


@torch.inference_mode()
def span_corruption_loss(lm, documents, sentinels, batch_tokens: int = 16384) -> float:
    """Mean nats per target token of the documents' fixed span corruption (T5's: mean span 3, density 0.15).

    Each document is start_id + its tokens, as loglikelihood_rolling scores it. Each chunk's
    corrupted input is the prefix (attended bidirectionally) and the model predicts
    "sentinel_0 span_0 sentinel_1 ...", as the span_corruption objective trains it. NaN for a
    tokenizer without sentinel tokens (nothing to measure).
    """
    if not sentinels:
        return math.nan
    max_len = lm.max_len
    rows = [
        row
        for d, ids in enumerate(lm.encode_batch(documents))
        for row in objectives.heldout_span_corruption([lm.start_id] + ids, max_len, sentinels, SPAN_EVAL_SEED, d)
    ]
    lm.model.eval()
    device = device_of(lm)
    nats, n = 0.0, 0
    per_batch = max(1, batch_tokens // max_len)
    for i in range(0, len(rows), per_batch):
        batch = rows[i : i + per_batch]
        ids, mask, labels = objectives.to_batch(batch, max(len(seq) for seq, _ in batch) - 1, lm.start_id)
        ids, mask, labels = ids.to(device), mask.to(device), labels.to(device)
        scored = labels != objectives.IGNORE
        # The output head only at target positions (the corrupted input's positions predict nothing).
        logits = lm.lm_head(lm.hidden(ids, attn_mask=mask)[scored])
        losses = F.cross_entropy(logits.float(), labels[scored], reduction="none")
        nats += float(losses.double().sum())
        n += int(scored.sum())
    return nats / n


def score_requests(lm, requests):
    """Per request, the metrics of choice_metrics; each request's context is run once for all its choices."""
    results = []
    for req, scored in zip(requests, lm.loglikelihood([req.lm_request for req in requests])):
        lps = [lp for lp, _, _ in scored]
        ntok = [n for _, n, _ in scored]
        # a multiple-input question scores its shared target: the per-character and per-byte proxies are of that text
        answers = None if req.target is None else [req.target] * len(req.choices)
        results.append(choice_metrics(lps, ntok, req.choices, req.gold, answers))
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
            rows.append(
                {
                    **keys,
                    "task": task,
                    "prompt": prompt,
                    "shots": shots,
                    "metric": metric,
                    "value": value,
                    "n": len(items),
                    "chance": chance,
                }
            )
    return rows


def example_rows(requests, metrics, keys):
    return [
        {
            **keys,
            "task": req.task,
            "prompt": req.prompt,
            "shots": req.shots,
            "example": req.example,
            "correct": m["acc"] == 1.0,
            "correct_norm": m["acc_norm"] == 1.0,
            "logprob_correct": m["logprob_correct"],
            "prob_correct_norm": m["norm_correct_prob"],
            "ppl_correct": m["ppl_correct"],
            "tokens_correct": m["tokens_correct"],
        }
        for req, m in zip(requests, metrics)
    ]


def evaluate_checkpoint(lm, keys: dict, documents: dict, tasks: dict, cfg: Evaluation, log=None):
    """All three per-checkpoint tables. tasks: name -> (Task, examples); cfg: the evaluation settings.

    log: where progress goes (examples/s of the task scoring, documents/s of the domain losses).
    """
    requests = []
    for name, (task, examples) in tasks.items():
        prompts = cfg.prompts_for(name, list(task.prompts))
        requests += build_requests(
            task,
            examples,
            prompts,
            cfg.shots,
            limit=cfg.examples_per_task,
            seed=cfg.fewshot_seed,
            fewshot_limit=cfg.fewshot_examples_per_task,
        )
    t0 = time.perf_counter()
    metrics = score_requests(lm, requests)
    t1 = time.perf_counter()
    if log:
        log(
            f"{keys['run']} step {keys['step']}: {len(requests)} task examples in {t1 - t0:.1f} s, {len(requests) / max(t1 - t0, 1e-9):.1f} examples/s"
        )
    losses = [{**keys, **row} for row in domain_losses(lm, documents)]
    if log:
        n_docs, dt = sum(len(d) for d in documents.values()), time.perf_counter() - t1
        log(
            f"{keys['run']} step {keys['step']}: domain losses of {n_docs} documents in {dt:.1f} s, {n_docs / max(dt, 1e-9):.1f} documents/s"
        )
    return {
        "domain_losses": tables.to_table("domain_losses", tables.rows_to_columns(losses, "domain_losses")),
        "task_scores": tables.to_table("task_scores", tables.rows_to_columns(summarize(requests, metrics, keys), "task_scores")),
        "example_scores": tables.to_table(
            "example_scores", tables.rows_to_columns(example_rows(requests, metrics, keys), "example_scores")
        ),
    }
