"""Pre-training objectives for a decoder-only model: a token batch -> (input_ids, attention mask, labels).

Every objective turns a row of T + 1 tokens into one sequence of at most T + 1 tokens with a
prefix: the model attends bidirectionally within the prefix and causally after it, and the
loss is on the tokens after the prefix only (labels are -100 elsewhere).

- clm: causal LM; the prefix is the first token alone, so the mask is plain causal.
- prefix_lm: a prefix of uniformly random length 1..T; the loss on the rest.
- span_corruption: T5's (Raffel et al. 2020) random spans, mean length 3, noise density 0.15,
  adapted to a decoder (as UL2 does): the prefix is the input with each span replaced by a
  sentinel, followed by the targets "sentinel_0 span_0 sentinel_1 span_1 ...".
- ul2: per row, one of UL2's three denoiser families (Tay et al. 2022): S = prefix_lm with
  weight 1/2, R = span corruption (mean 3, density 0.15) with weight 1/4, X = extreme span
  corruption (mean 8, density 0.5) with weight 1/4; the half-S, half-span split follows UL2R.
  X's spans are shorter than UL2's (mean 32-64) because our rows are 64-128 tokens long.
  No paradigm token is prepended: evaluation scores every model as a plain causal LM.

Labels are aligned with input_ids (labels[:, i] is the token predicted at position i, already
shifted). The randomness of a batch comes from numpy's generator seeded with (seed, step, 1),
a stream apart from the data sampler's (seed, step): a resumed run draws the same masks.

torch is imported inside the functions that build tensors: config validation uses the span
arithmetic below when the workflow is parsed, where importing torch would cost seconds.
"""

from dataclasses import dataclass

import numpy as np

IGNORE = -100  # label of positions without loss (torch's cross_entropy ignore_index)
OBJECTIVES = ("clm", "prefix_lm", "span_corruption", "ul2")
STREAM = 1  # the objective's random stream: default_rng([seed, step, STREAM])


@dataclass(frozen=True)
class Denoiser:
    kind: str  # "prefix_lm" or "span"
    density: float = 0.0  # share of tokens in noise spans (span only)
    mean_span: float = 0.0  # mean noise span length (span only)


S_DENOISER = Denoiser("prefix_lm")
R_DENOISER = Denoiser("span", density=0.15, mean_span=3.0)
X_DENOISER = Denoiser("span", density=0.5, mean_span=8.0)
UL2_MIXTURE = ((S_DENOISER, 0.5), (R_DENOISER, 0.25), (X_DENOISER, 0.25))
DENOISERS = {"prefix_lm": ((S_DENOISER, 1.0),), "span_corruption": ((R_DENOISER, 1.0),), "ul2": UL2_MIXTURE}


def span_counts(length: int, density: float, mean_span: float) -> tuple[int, int]:
    """(noise tokens, noise spans) for a sequence of `length` tokens, as T5's random_spans_noise_mask."""
    noise = min(max(int(round(length * density)), 1), length - 1)
    return noise, max(int(round(noise / mean_span)), 1)


def source_length(total: int, denoiser: Denoiser, max_spans: int | None = None) -> int:
    """The most source tokens whose span corruption (n + 2 * spans tokens) fits in `total`.

    With max_spans, also no more spans than there are sentinels.
    """
    for n in range(total, 1, -1):
        spans = span_counts(n, denoiser.density, denoiser.mean_span)[1]
        if n + 2 * spans <= total and (max_spans is None or spans <= max_spans):
            return n
    raise ValueError(f"no span corruption fits in {total} tokens")


def sentinels_needed(objective: str, seq_len: int) -> int:
    """Sentinel tokens a run with this objective needs for rows of seq_len + 1 tokens."""
    spans = [
        span_counts(source_length(seq_len + 1, d), d.density, d.mean_span)[1]
        for d, _ in DENOISERS.get(objective, ())
        if d.kind == "span"
    ]
    return max(spans, default=0)


def _random_segmentation(n_items: int, n_segments: int, rng) -> np.ndarray:
    """Lengths of a uniformly random split of n_items into n_segments non-empty parts."""
    first = np.concatenate([[0], rng.permutation(np.arange(n_items - 1) < n_segments - 1)]).astype(np.int64)
    return np.bincount(np.cumsum(first), minlength=n_segments)


def random_spans_noise_mask(length: int, density: float, mean_span: float, rng) -> np.ndarray:
    """T5's noise mask: spans alternate non-noise, noise, starting with non-noise; all such masks equally likely."""
    noise, spans = span_counts(length, density, mean_span)
    lengths = np.stack([_random_segmentation(length - noise, spans, rng), _random_segmentation(noise, spans, rng)], 1)
    return np.repeat(np.tile([False, True], spans), lengths.reshape(-1))


def span_corrupt(tokens: np.ndarray, noise_mask: np.ndarray, sentinels) -> tuple[np.ndarray, int]:
    """(corrupted input + targets, prefix length): each noise span becomes sentinel_i in the input;
    the targets are sentinel_i followed by span i, for every span in order."""
    starts = noise_mask & ~np.concatenate([[False], noise_mask[:-1]])
    span_id = np.cumsum(starts) - 1  # index of the span each noise token belongs to
    if starts.sum() > len(sentinels):
        raise ValueError(f"span corruption needs {int(starts.sum())} sentinel tokens, the tokenizer has {len(sentinels)}")
    sentinel_at = np.asarray(sentinels, dtype=np.int64)[np.maximum(span_id, 0)]
    keep = ~noise_mask | starts  # the first token of a span stands for the whole span
    corrupted = np.where(noise_mask, sentinel_at, tokens)[keep]
    targets = np.where(starts, sentinel_at, -1)  # a sentinel before each span's first token
    targets = np.stack([targets, np.where(noise_mask, tokens, -1)], 1).reshape(-1)
    targets = targets[targets >= 0]
    return np.concatenate([corrupted, targets]).astype(np.int64), len(corrupted)


def denoise_row(tokens: np.ndarray, denoiser: Denoiser, rng, sentinels) -> tuple[np.ndarray, int]:
    """One row of T + 1 tokens -> (sequence of at most T + 1 tokens, prefix length)."""
    if denoiser.kind == "prefix_lm":
        return tokens, int(rng.integers(1, len(tokens)))  # at least one token in the prefix and one after it
    n = source_length(len(tokens), denoiser)
    mask = random_spans_noise_mask(n, denoiser.density, denoiser.mean_span, rng)
    return span_corrupt(tokens[:n], mask, sentinels)


def to_batch(rows, length: int, pad: int):
    """(sequence, prefix length) rows -> input_ids (B, length), attention mask (B, 1, length, length), labels.

    Mask: True = may attend; position i sees j if j <= i or j is in the prefix. Rows shorter than
    length + 1 are padded at the end; padding is never attended to by real tokens and has no loss.
    """
    import torch

    ids = np.full((len(rows), length + 1), pad, dtype=np.int64)
    labels = np.full((len(rows), length), IGNORE, dtype=np.int64)
    prefix = np.ones(len(rows), dtype=np.int64)
    for r, (seq, p) in enumerate(rows):
        ids[r, : len(seq)] = seq
        labels[r, p - 1 : len(seq) - 1] = seq[p:]
        prefix[r] = p
    pos = np.arange(length)
    mask = (pos[None, None, :] <= pos[None, :, None]) | (pos[None, None, :] < prefix[:, None, None])
    return torch.from_numpy(ids[:, :-1]), torch.from_numpy(mask[:, None]), torch.from_numpy(labels)


def make_batch(objective: str, rows, seed: int, step: int, sentinels, pad: int):
    """A training batch: rows (B, T + 1) int64 tensor -> (input_ids, attention mask or None, labels).

    clm returns no mask (the model's causal fast path). Deterministic in (seed, step).
    """
    if objective == "clm":
        return rows[:, :-1], None, rows[:, 1:]
    rng = np.random.default_rng([seed, step, STREAM])
    denoisers, weights = zip(*DENOISERS[objective])
    picks = rng.choice(len(denoisers), size=len(rows), p=np.asarray(weights) / sum(weights))
    tokens = rows.numpy()
    out = [denoise_row(tokens[r], denoisers[k], rng, sentinels) for r, k in enumerate(picks)]
    return to_batch(out, rows.shape[1] - 1, pad)


def heldout_span_corruption(ids, max_len: int, sentinels, seed: int, doc: int):
    """A document's deterministic span corruption for evaluation: (sequence, prefix length) rows.

    The document is cut into chunks whose corruption fits max_len + 1 tokens with at most as many
    spans as sentinels; chunk c is corrupted with default_rng([seed, doc, c]).
    """
    n = source_length(max_len + 1, R_DENOISER, len(sentinels))
    rows = []
    for c, s in enumerate(range(0, len(ids), n)):
        chunk = np.asarray(ids[s : s + n], dtype=np.int64)
        if len(chunk) >= 2:  # a span and a token outside it
            mask = random_spans_noise_mask(
                len(chunk), R_DENOISER.density, R_DENOISER.mean_span, np.random.default_rng([seed, doc, c])
            )
            rows.append(span_corrupt(chunk, mask, sentinels))
    return rows
