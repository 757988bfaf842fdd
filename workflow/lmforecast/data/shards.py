"""Pre-training data: the token store per domain and the mixture sampler.

A domain's store is a directory (rule tokenize's output, results/tokens/DOMAIN/):

- tokens.bin: its training documents tokenized and concatenated, each followed by EOS, as raw
  uint16 (a vocabulary of at most 65,536 tokens) or uint32 ids: nanoGPT's and Megatron's layout,
  read through a memory map, so a pretrain job's memory does not grow with the corpus;
- documents.bin: the end offset of each document in tokens.bin (uint64);
- manifest.json: dtype and counts, the source files with sizes and sha256, the tokenizer's hash.

Tokenization streams: documents are read in batches of about BATCH_CHARS characters, encoded by
`workers` processes (this one and workers - 1 helpers, each with its own copy of the tokenizer,
single-threaded), and written in order, with a bounded number of batches in flight. The batch for training step t is a pure function of (run seed, t, mixture):
resuming at step t needs no saved data position.
"""

import hashlib
import json
import multiprocessing
import os
from collections import deque
from multiprocessing.pool import AsyncResult
from pathlib import Path

import numpy as np

TOKENS, DOCUMENTS, MANIFEST = "tokens.bin", "documents.bin", "manifest.json"
# A batch's text, in characters: about 0.25 s of encoding for one process (~1 MB/s), so that even a
# domain of a few MB is shared evenly between the workers (batches of a fixed number of documents
# were not: the standard library's 168 modules made one batch of 512, all of it for one worker), and
# the per-batch cost (pickling to and from a worker) stays negligible. Memory: 2 x workers batches.
BATCH_CHARS = 1 << 18


def encode_documents(tok, docs, eos: int) -> np.ndarray:
    ids = []
    for enc in tok.encode_batch(docs):
        ids.extend(enc.ids)
        ids.append(eos)
    return np.asarray(ids, dtype=np.uint16)


def token_dtype(vocab_size: int):
    return np.uint16 if vocab_size <= 1 << 16 else np.uint32


_worker = {}


def _init_worker(tokenizer_dir):
    # One thread per process: the processes are the parallelism (tokenizers' own threads would oversubscribe).
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    from lmforecast.data import tokenizer as tokenizer_lib

    tok = tokenizer_lib.load(tokenizer_dir)
    vocab_size = tok.get_vocab_size()
    _worker.update(tok=tok.backend, eos=tokenizer_lib.eos_id(tok), dtype=token_dtype(vocab_size), vocab_size=vocab_size)


def _encode(docs: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """A batch of documents -> (their ids, each followed by EOS; each document's length with it).

    encode_batch_fast: encode_batch's ids without the character offsets, which a store does not keep
    (tracking them took ~40% of encode_batch's time, measured on 60 of the standard library's files).
    Each Encoding's `ids` is a new Python list at every access: read once, into one flat list, which
    np.fromiter converts (three reads and a slice assignment per document cost 5% of encode_batch's time).
    """
    encs = _worker["tok"].encode_batch_fast(docs, add_special_tokens=False)
    eos, flat = _worker["eos"], []
    for e in encs:
        flat += e.ids
        flat.append(eos)
    lengths = np.fromiter((len(e) + 1 for e in encs), dtype=np.uint64, count=len(encs))
    return np.fromiter(flat, dtype=_worker["dtype"], count=len(flat)), lengths


def _encoded(batches, tokenizer_dir, workers: int):
    """The batches encoded, in order, by this process and workers - 1 helper processes.

    This process encodes a batch itself whenever each helper has two queued: so no core waits while
    the helpers start (spawning one, importing numpy and tokenizers and loading the tokenizer took
    0.4-0.8 s, measured: a tenth of a 5 MB domain's work), and the reading stays ahead of the helpers.
    Memory stays bounded: at most 4 x workers batches in flight. This process's tokenizer: _init_worker's (write_store's call).
    """
    helpers = workers - 1
    if not helpers:
        yield from map(_encode, batches)
        return
    # spawn, not fork: a forked tokenizers library may deadlock (its thread pool does not survive fork)
    with multiprocessing.get_context("spawn").Pool(helpers, _init_worker, (str(tokenizer_dir),)) as pool:
        pending = deque()  # in batch order: a helper's AsyncResult, or a batch encoded here
        for batch in batches:
            queued = sum(isinstance(p, AsyncResult) and not p.ready() for p in pending)
            pending.append(pool.apply_async(_encode, (batch,)) if queued < 2 * helpers else _encode(batch))
            while pending and (len(pending) >= 4 * workers or _done(pending[0])):
                yield _result(pending.popleft())
        while pending:
            yield _result(pending.popleft())


def _done(item) -> bool:
    return not isinstance(item, AsyncResult) or item.ready()


def _result(item):
    return item.get() if isinstance(item, AsyncResult) else item


def file_record(path) -> dict:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return {"path": str(path), "bytes": Path(path).stat().st_size, "sha256": h.hexdigest()}


def batches(docs, batch_chars: int = BATCH_CHARS):
    """Documents grouped into lists of at least one document and about batch_chars characters."""
    batch, size = [], 0
    for doc in docs:
        batch.append(doc)
        size += len(doc)
        if size >= batch_chars:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def write_store(
    docs, tokenizer_dir, out_dir, workers: int = 1, batch_chars: int = BATCH_CHARS, manifest: dict | None = None
) -> dict:
    """Tokenize `docs` (an iterable of str, streamed) into a token store at out_dir, written atomically."""
    from lmforecast.data import tokenizer as tokenizer_lib
    from lmforecast.io import atomic_dir

    _init_worker(str(tokenizer_dir))  # this process encodes too: its tokenizer, loaded once
    n_tokens = n_docs = 0
    with atomic_dir(out_dir) as tmp:
        with open(Path(tmp) / TOKENS, "wb") as tokens, open(Path(tmp) / DOCUMENTS, "wb") as ends:
            for ids, lengths in _encoded(batches(docs, batch_chars), tokenizer_dir, workers):
                tokens.write(ids.tobytes())
                ends.write((n_tokens + np.cumsum(lengths, dtype=np.uint64)).tobytes())
                n_tokens += len(ids)
                n_docs += len(lengths)
        info = {
            **(manifest or {}),
            "dtype": np.dtype(_worker["dtype"]).name,
            "tokens": n_tokens,
            "documents": n_docs,
            "eos_id": _worker["eos"],
            "vocab_size": _worker["vocab_size"],
            "tokenizer_sha256": tokenizer_lib.file_hash(tokenizer_dir),
        }
        (Path(tmp) / MANIFEST).write_text(json.dumps(info, indent=2) + "\n")
    return info


def concat_stores(parts, out_dir, tokenizer_dir, skip_docs: int = 0, manifest: dict | None = None, where: str = "domain") -> dict:
    """Chunk stores (rule tokenize_chunk's, in file order, made with the tokenizer at tokenizer_dir) as one
    store at out_dir, written atomically, their first skip_docs documents (the held-out ones) left out.

    The same bytes as one job tokenizing all the files: a document's tokens do not depend on its
    batch. Copied in blocks (bounded memory), far cheaper than the tokenizing.
    """
    import shutil

    from lmforecast.data.sources import DataError
    from lmforecast.data.tokenizer import file_hash
    from lmforecast.io import atomic_dir

    infos = [json.loads((Path(p) / MANIFEST).read_text()) for p in parts]
    shared = ("dtype", "eos_id", "vocab_size", "tokenizer_sha256")  # the tokenizer's: the same in every part
    sha256 = file_hash(tokenizer_dir)
    for p, info in zip(parts, infos):
        if info["tokenizer_sha256"] != sha256:
            raise DataError(f"{p}: made with another tokenizer than {tokenizer_dir} (tokenizer_sha256 in its {MANIFEST})")
    itemsize, block = np.dtype(infos[0]["dtype"]).itemsize, 1 << 22
    skip, n_tokens, n_docs = skip_docs, 0, 0
    with atomic_dir(out_dir) as tmp:
        with open(Path(tmp) / TOKENS, "wb") as tokens, open(Path(tmp) / DOCUMENTS, "wb") as ends:
            for p in parts:
                part_ends = document_ends(p)
                k = min(skip, len(part_ends))
                skip -= k
                start = int(part_ends[k - 1]) if k else 0  # the first kept document's first token
                with open(Path(p) / TOKENS, "rb") as f:
                    f.seek(start * itemsize)
                    shutil.copyfileobj(f, tokens, block * itemsize)
                for i in range(k, len(part_ends), block):
                    ends.write((part_ends[i : i + block] - np.uint64(start) + np.uint64(n_tokens)).tobytes())
                n_tokens += int(part_ends[-1]) - start if len(part_ends) else 0
                n_docs += len(part_ends) - k
        if not n_docs:
            raise DataError(
                f"{where}: no training document" + (f" after the {skip_docs} held out (heldout_docs)" if skip_docs else "")
            )
        info = {**(manifest or {}), **{k: infos[0][k] for k in shared}, "tokens": n_tokens, "documents": n_docs}
        info["chunks"] = len(parts)
        (Path(tmp) / MANIFEST).write_text(json.dumps(info, indent=2) + "\n")
    return info


def open_store(directory) -> np.memmap:
    """A store's tokens, memory-mapped read-only (nothing is read until a window is sliced)."""
    info = json.loads((Path(directory) / MANIFEST).read_text())
    if not info["tokens"]:  # a chunk of empty files: numpy cannot map an empty file
        return np.zeros(0, dtype=info["dtype"])
    return np.memmap(Path(directory) / TOKENS, dtype=info["dtype"], mode="r", shape=(info["tokens"],))


def document_ends(directory) -> np.memmap:
    info = json.loads((Path(directory) / MANIFEST).read_text())
    if not info["documents"]:
        return np.zeros(0, dtype=np.uint64)
    return np.memmap(Path(directory) / DOCUMENTS, dtype=np.uint64, mode="r", shape=(info["documents"],))


def load_shards(paths: dict) -> dict:
    """Domain -> its tokens, memory-mapped: a token store directory, or a .npy shard (bench/pretrain.py's)."""
    return {d: open_store(p) if Path(p).is_dir() else np.load(p, mmap_mode="r") for d, p in paths.items()}


def get_batch(shards: dict, mixture: dict, seed: int, step: int, batch_size: int, seq_len: int, rows: range | None = None):
    """Rows drawn from domains by mixture weight, each a random window of seq_len + 1 tokens.

    Returns (rows, tokens_per_domain): rows of shape (B, T + 1), from which the objective
    makes inputs and targets (lmforecast/train/objectives.py), and the tokens per domain of
    the whole batch (the step's).

    rows: which rows of the step's (global) batch to materialize, e.g. one rank's share under
    data parallelism (default: all). The random numbers are drawn for the whole batch, so row i
    is the same whichever rows are asked for and the global batch does not depend on the world size.
    """
    import torch  # here: the tokenize jobs that import this module need no torch

    rng = np.random.default_rng([seed, step])
    domains = sorted(mixture)
    weights = np.array([mixture[d] for d in domains], dtype=np.float64)
    picks = rng.choice(len(domains), size=batch_size, p=weights / weights.sum())
    selected = range(batch_size) if rows is None else rows
    out, counts = [], {d: 0 for d in domains}
    for r, i in enumerate(picks):
        shard = shards[domains[i]]
        if len(shard) < seq_len + 2:
            raise ValueError(
                f"domain {domains[i]!r}: {len(shard)} training tokens, fewer than a window of seq_len + 1 ({seq_len + 1})"
            )
        start = int(rng.integers(0, len(shard) - seq_len - 1))
        if r in selected:
            out.append(shard[start : start + seq_len + 1].astype(np.int64))
        counts[domains[i]] += seq_len
    return torch.from_numpy(np.stack(out)), counts
