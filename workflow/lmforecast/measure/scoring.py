"""Log-likelihood of token spans under a causal LM, batched and sorted by length.

Used by evaluation (domain losses, multiple-choice tasks) and by SFT scoring alike, so
that before- and after-SFT numbers come from one scorer; its entry points are an LM's
`loglikelihood` and `loglikelihood_rolling` (measure/lm.py). Conventions follow
lm-evaluation-harness's HF backend: the context is tokenized alone and the continuation
is what the joint tokenization of context + continuation adds after the context's tokens;
long inputs lose tokens on the left.

Multiple-choice questions are scored as trees: the shared context is run once and every
choice's tokens follow it in the same packed row, each choice attending to the context
and to its own earlier tokens only, at the positions it would have on its own (explicit
position ids). Choices whose (left-truncated) context tokens differ go in separate rows.

Batches are built on the host and moved to the model's device (a GPU when the job has one);
scoring runs under torch.inference_mode, and log-probabilities are taken in float32 at least
whatever the model's dtype (a bf16 model: evaluation.precision).
"""

import math

import numpy as np
import torch


def encode_pair(lm, context: str, continuation: str):
    """Token ids of start_id + context + continuation, and where the continuation starts.

    As lm-eval: trailing whitespace of the context moves to the continuation (so " A" after
    "Answer: " is tokenized as a word), and the context tokens are the context's own.
    """
    return encode_choices(lm, context, [continuation])[0]


def encode_choices(lm, context: str, continuations):
    """encode_pair for each continuation, tokenizing the context once."""
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces:
        context, spaces = context[:-n_spaces], context[-n_spaces:]
        continuations = [spaces + c for c in continuations]
    ctx = lm.encode(context)
    out = []
    for cont in continuations:
        whole = lm.encode(context + cont)
        out.append(([lm.start_id] + ctx + whole[len(ctx) :], 1 + len(ctx)))
    return out


def _truncate(seq, start, max_len):
    """Cut on the left to max_len + 1 tokens, keeping the scored span (as lm-eval)."""
    cut = max(0, len(seq) - (max_len + 1))
    return seq[cut:], max(1, start - cut)


def _pack(prefix, branches):
    """One packed row: the prefix, then each branch but its last token (nothing predicts from it).

    Returns token ids, positions, segment ids (0 = prefix, b = branch b) and, per branch,
    the row indices whose logits predict its tokens.
    """
    p = len(prefix)
    ids, pos, seg = list(prefix), list(range(p)), [0] * p
    predictors = []
    for b, branch in enumerate(branches, 1):
        tail = branch[:-1]
        predictors.append([p - 1] + list(range(len(ids), len(ids) + len(tail))) if branch else [])
        ids += tail
        pos += range(p, p + len(tail))
        seg += [b] * len(tail)
    return ids, pos, seg, predictors


def device_of(lm) -> torch.device:
    return next(lm.model.parameters()).device


@torch.inference_mode()
def tree_logprobs(lm, trees, batch_tokens: int = 16384):
    """For each (prefix, [branch, ...]): per branch, (sum of log p, token count, all-greedy).

    Every branch is scored as if it were the sequence prefix + branch on its own. Rows are
    sorted by packed length and batched to about batch_tokens tokens.
    """
    lm.model.eval()
    device = device_of(lm)
    packed = [_pack(prefix, branches) for prefix, branches in trees]
    out = [[None] * len(branches) for _, branches in trees]
    order = sorted(range(len(trees)), key=lambda t: -len(packed[t][0]))
    i = 0
    while i < len(order):
        width = len(packed[order[i]][0])
        rows = max(1, batch_tokens // width)
        batch = order[i : i + rows]
        i += rows
        ids = torch.zeros(len(batch), width, dtype=torch.long)
        pos = torch.zeros(len(batch), width, dtype=torch.long)
        seg = torch.full((len(batch), width), -1, dtype=torch.long)  # -1: right padding
        for r, t in enumerate(batch):
            n = len(packed[t][0])
            ids[r, :n], pos[r, :n], seg[r, :n] = (torch.tensor(x) for x in packed[t][:3])
        ids, pos, seg = ids.to(device), pos.to(device), seg.to(device)
        if max(max(packed[t][2]) for t in batch) <= 1:  # seg.max(), from the host's lists: no device sync
            # At most one branch per row: plain causal rows, the fast path (domain losses, truncated choices).
            hidden = lm.hidden(ids)
        else:
            # Causal, and a branch token sees the prefix and its own branch; padding sees the prefix
            # and earlier padding, so that no row of the mask is empty (NaN) and no real token sees it.
            causal = torch.ones(width, width, dtype=torch.bool, device=device).tril()
            mask = causal & ((seg[:, None, :] == 0) | (seg[:, None, :] == seg[:, :, None]))
            hidden = lm.hidden(ids, attn_mask=mask[:, None], position_ids=pos)
        rows_idx, cols_idx, targets, owners = [], [], [], []
        for r, t in enumerate(batch):
            for b, (branch, pred) in enumerate(zip(trees[t][1], packed[t][3])):
                rows_idx += [r] * len(pred)
                cols_idx += pred
                targets += branch
                owners.append((t, b, len(branch)))
        # The output head only where a token is scored: the context's other positions predict nothing we need.
        sel = lm.lm_head(hidden[torch.tensor(rows_idx, device=device), torch.tensor(cols_idx, device=device)])
        # float32 at least (as lm-eval's log_softmax); a float64 model keeps float64.
        logprobs = torch.log_softmax(sel if sel.dtype == torch.float64 else sel.float(), dim=-1)
        targets = torch.tensor(targets, dtype=torch.long, device=device)
        picked = logprobs.gather(-1, targets[:, None])[:, 0].double().cpu()
        hits = (logprobs.argmax(-1) == targets).cpu()
        k = 0
        for t, b, n in owners:
            out[t][b] = (float(picked[k : k + n].sum()), n, bool(hits[k : k + n].all()))
            k += n
    return out


def span_logprobs(lm, sequences, starts, batch_tokens: int = 16384):
    """For each sequence, (sum of log p, token count, all-greedy) over tokens[start:].

    Sequences longer than lm.max_len + 1 are cut on the left (the scored span is kept).
    """
    trees = []
    for seq, start in zip(sequences, starts):
        seq, start = _truncate(seq, start, lm.max_len)
        trees.append((seq[:start], [seq[start:]]))
    return [branches[0] for branches in tree_logprobs(lm, trees, batch_tokens)]


def group_logprobs(lm, groups, batch_tokens: int = 2048):
    """For each group (a question: its choices' (sequence, start) pairs), span_logprobs of each choice.

    Choices whose tokens before `start` (after left truncation) are the same share one packed
    row; any other choice, e.g. one cut differently because it is longer, gets its own.
    Smaller batches than span_logprobs': packed rows vary in length, and less padding wins
    over larger matrix products (measured on 1 CPU thread).
    """
    trees, where = [], []
    for group in groups:
        by_prefix, loc = {}, []
        for seq, start in group:
            seq, start = _truncate(seq, start, lm.max_len)
            key = tuple(seq[:start])
            if key not in by_prefix:
                by_prefix[key] = len(trees)
                trees.append((seq[:start], []))
            t = by_prefix[key]
            loc.append((t, len(trees[t][1])))
            trees[t][1].append(seq[start:])
        where.append(loc)
    scored = tree_logprobs(lm, trees, batch_tokens)
    return [[scored[t][b] for t, b in loc] for loc in where]


def choice_metrics(logprobs, n_tokens, choices, gold: int, answers=None) -> dict:
    """lm-eval's acc / acc_norm and DataDecide's probability proxies for one question.

    answers: the scored texts where they are not the choices (a multiple-input question's shared target);
    acc_norm divides by the choices' lengths whatever they are, as lm-eval's process_results does.
    """
    ll = np.asarray(logprobs, dtype=np.float64)
    chars = np.asarray([len(c) for c in choices], dtype=np.float64)
    answers = choices if answers is None else answers
    probs = np.exp(ll)
    others = np.delete(probs, gold)
    gold_bytes = len(answers[gold].encode("utf-8"))
    return {
        "acc": float(np.argmax(ll) == gold),
        "acc_norm": float(np.argmax(ll / chars) == gold),
        "correct_prob": float(probs[gold]),
        "correct_prob_per_token": float(math.exp(ll[gold] / n_tokens[gold])),
        "correct_prob_per_char": float(math.exp(ll[gold] / len(answers[gold]))),
        "margin": float(probs[gold] - others.max()),
        "norm_correct_prob": float(probs[gold] / probs.sum()),
        "logprob_correct": float(ll[gold]),
        "bits_per_byte": float(-ll[gold] / gold_bytes / math.log(2)),
        # cloze perplexity of the answer: per token of the gold continuation (its token count kept, for pooling)
        "ppl_correct": float(math.exp(-ll[gold] / n_tokens[gold])) if n_tokens[gold] else math.nan,
        "tokens_correct": int(n_tokens[gold]),
    }
