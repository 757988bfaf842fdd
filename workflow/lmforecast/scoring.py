"""Log-likelihood of token spans under a causal LM, batched and sorted by length.

Used by evaluation (domain losses, multiple-choice tasks) and by SFT scoring alike, so
that before- and after-SFT numbers come from one scorer. Conventions follow
lm-evaluation-harness: context and continuation are tokenized together and the
continuation is what follows the context's own tokens; long inputs lose tokens on the left.
"""

import math

import numpy as np
import torch


def encode_pair(tok, eos: int, context: str, continuation: str):
    """Token ids of EOS + context + continuation, and where the continuation starts."""
    ctx = tok.encode(context).ids
    whole = tok.encode(context + continuation).ids
    return [eos] + whole, 1 + len(ctx)


@torch.no_grad()
def span_logprobs(model, sequences, starts, max_len: int, batch_tokens: int = 16384):
    """For each sequence, (sum of log p, token count, all-greedy) over tokens[start:].

    Sequences longer than max_len + 1 are cut on the left (the scored span is kept).
    """
    model.eval()
    out = [None] * len(sequences)
    order = sorted(range(len(sequences)), key=lambda i: -len(sequences[i]))
    i = 0
    while i < len(order):
        width = min(len(sequences[order[i]]), max_len + 1)
        rows = max(1, batch_tokens // width)
        batch = order[i : i + rows]
        i += rows
        ids = torch.zeros(len(batch), width, dtype=torch.long)
        spans = []
        for r, j in enumerate(batch):
            seq, start = sequences[j], starts[j]
            cut = max(0, len(seq) - width)
            seq, start = seq[cut:], max(1, start - cut)
            ids[r, : len(seq)] = torch.tensor(seq)  # right padding: causal attention ignores it
            spans.append((start, len(seq)))
        logprobs = torch.log_softmax(model(ids[:, :-1]).float(), dim=-1)
        for r, (j, (start, end)) in enumerate(zip(batch, spans)):
            targets = ids[r, start:end]
            lp = logprobs[r, start - 1 : end - 1]
            picked = lp.gather(-1, targets[:, None])[:, 0]
            greedy = bool((lp.argmax(-1) == targets).all())
            out[j] = (float(picked.double().sum()), end - start, greedy)
    return out


def choice_metrics(logprobs, n_tokens, choices, gold: int) -> dict:
    """lm-eval's acc / acc_norm and DataDecide's probability proxies for one question."""
    ll = np.asarray(logprobs, dtype=np.float64)
    chars = np.asarray([len(c) for c in choices], dtype=np.float64)
    probs = np.exp(ll)
    others = np.delete(probs, gold)
    gold_bytes = len(choices[gold].encode("utf-8"))
    return {
        "acc": float(np.argmax(ll) == gold),
        "acc_norm": float(np.argmax(ll / chars) == gold),
        "correct_prob": float(probs[gold]),
        "correct_prob_per_token": float(math.exp(ll[gold] / n_tokens[gold])),
        "correct_prob_per_char": float(math.exp(ll[gold] / chars[gold])),
        "margin": float(probs[gold] - others.max()),
        "norm_correct_prob": float(probs[gold] / probs.sum()),
        "logprob_correct": float(ll[gold]),
        "bits_per_byte": float(-ll[gold] / gold_bytes / math.log(2)),
    }
