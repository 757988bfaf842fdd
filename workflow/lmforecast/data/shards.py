"""Pre-training data: token shards per domain and the mixture sampler.

A shard is one domain's training documents tokenized and concatenated, each followed
by EOS (uint16 .npy). The batch for training step t is a pure function of
(run seed, t, mixture): resuming at step t needs no saved data position.
"""

import numpy as np
import torch


def encode_documents(tok, docs, eos: int) -> np.ndarray:
    ids = []
    for enc in tok.encode_batch(docs):
        ids.extend(enc.ids)
        ids.append(eos)
    return np.asarray(ids, dtype=np.uint16)


def load_shards(paths: dict) -> dict:
    return {domain: np.load(path) for domain, path in paths.items()}


def get_batch(shards: dict, mixture: dict, seed: int, step: int, batch_size: int, seq_len: int, rows: range | None = None):
    """Rows drawn from domains by mixture weight, each a random window of seq_len + 1 tokens.

    Returns (rows, tokens_per_domain): rows of shape (B, T + 1), from which the objective
    makes inputs and targets (lmforecast/train/objectives.py), and the tokens per domain of
    the whole batch (the step's).

    rows: which rows of the step's (global) batch to materialize, e.g. one rank's share under
    data parallelism (default: all). The random numbers are drawn for the whole batch, so row i
    is the same whichever rows are asked for and the global batch does not depend on the world size.
    """
    rng = np.random.default_rng([seed, step])
    domains = sorted(mixture)
    weights = np.array([mixture[d] for d in domains], dtype=np.float64)
    picks = rng.choice(len(domains), size=batch_size, p=weights / weights.sum())
    selected = range(batch_size) if rows is None else rows
    out, counts = [], {d: 0 for d in domains}
    for r, i in enumerate(picks):
        shard = shards[domains[i]]
        start = int(rng.integers(0, len(shard) - seq_len - 1))
        if r in selected:
            out.append(shard[start : start + seq_len + 1].astype(np.int64))
        counts[domains[i]] += seq_len
    return torch.from_numpy(np.stack(out)), counts
