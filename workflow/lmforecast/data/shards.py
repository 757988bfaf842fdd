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


def get_batch(shards: dict, mixture: dict, seed: int, step: int, batch_size: int, seq_len: int):
    """Rows drawn from domains by mixture weight, each a random window of seq_len + 1 tokens.

    Returns (rows, tokens_per_domain): rows of shape (B, T + 1), from which the objective
    makes inputs and targets (lmforecast/train/objectives.py).
    """
    rng = np.random.default_rng([seed, step])
    domains = sorted(mixture)
    weights = np.array([mixture[d] for d in domains], dtype=np.float64)
    picks = rng.choice(len(domains), size=batch_size, p=weights / weights.sum())
    rows, counts = [], {d: 0 for d in domains}
    for i in picks:
        shard = shards[domains[i]]
        start = int(rng.integers(0, len(shard) - seq_len - 1))
        rows.append(shard[start : start + seq_len + 1].astype(np.int64))
        counts[domains[i]] += seq_len
    return torch.from_numpy(np.stack(rows)), counts
