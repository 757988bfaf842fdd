"""Supervised fine-tuning of a checkpoint on one task, then scoring with the evaluation scorer.

SFT trains on the task's `sft` split in the zero-shot format of one prompt template,
with the loss on the answer tokens only (the prompt is context). The fine-tuned model
is scored on the `eval` split exactly as the evaluate stage scores a checkpoint.
"""

import numpy as np
import torch
import torch.nn.functional as F

from lmforecast import tables
from lmforecast.evaluate import score_requests
from lmforecast.scoring import encode_pair
from lmforecast.tasks import answer, build_requests, render


def sft_batches(tok, eos, task, examples, prompt, max_len):
    """(input ids, loss mask) per SFT example; the mask covers the answer tokens."""
    out = []
    for x in examples:
        if x["split"] != task.fewshot_split:
            continue
        full, start = encode_pair(tok, eos, render(task, prompt, x), answer(task, x))
        cut = max(0, len(full) - (max_len + 1))  # drop prompt tokens on the left, as the scorer does
        seq, start = full[cut:], max(1, start - cut)
        mask = [0] * start + [1] * (len(seq) - start)
        out.append((seq, mask))
    return out


def fine_tune(model, data, cfg: dict, seed: int, log=print):
    """Full fine-tuning with AdamW at a constant learning rate for cfg['steps'] steps."""
    torch.manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg["lr"], weight_decay=0.0)
    model.train()
    for step in range(cfg["steps"]):
        idx = np.random.default_rng([seed, step]).choice(len(data), size=min(cfg["batch_size"], len(data)), replace=False)
        width = max(len(data[i][0]) for i in idx)
        ids = torch.zeros(len(idx), width, dtype=torch.long)
        mask = torch.zeros(len(idx), width, dtype=torch.bool)
        for r, i in enumerate(idx):
            seq, m = data[i]
            ids[r, : len(seq)] = torch.tensor(seq)
            mask[r, : len(m)] = torch.tensor(m, dtype=torch.bool)
        logits = model(ids[:, :-1])
        losses = F.cross_entropy(logits.reshape(-1, logits.size(-1)), ids[:, 1:].reshape(-1), reduction="none")
        target_mask = mask[:, 1:].reshape(-1)
        loss = losses[target_mask].mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if (step + 1) % 20 == 0 or step + 1 == cfg["steps"]:
            log(f"sft step {step + 1}/{cfg['steps']} loss {loss.item():.4f}")
    model.eval()
    return model


def sft_and_score(model, tok, eos, keys: dict, task, examples, cfg: dict, max_len: int, log=print):
    """Fine-tune `model` (in place) on `task` and return its sft_scores rows as a table."""
    prompt = cfg.get("prompt") or next(iter(task.prompts))
    data = sft_batches(tok, eos, task, examples, prompt, max_len)
    fine_tune(model, data, cfg, cfg["seed"], log=log)
    requests = build_requests(task, examples, [prompt], [0], limit=cfg.get("examples_per_task"))
    metrics = score_requests(model, tok, eos, requests, max_len)
    rows = [
        {**keys, "task": task.name, "sft_method": cfg["method"], "metric": metric,
         "value": float(np.mean([m[metric] for m in metrics])), "n": len(metrics)}
        for metric in ("acc", "acc_norm", "correct_prob", "norm_correct_prob", "logprob_correct")
    ]
    return tables.to_table("sft_scores", tables.rows_to_columns(rows, "sft_scores"))
