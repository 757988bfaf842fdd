"""Peak memory of a pretrain job against the size of its token store: about 10M vs about 1B tokens.

    python bench/memory.py          # writes 2 GB of synthesized tokens to a temporary directory; ~2 minutes

A pretrain job (`lmforecast pretrain`, as rule pretrain runs it: run s-300k-uniform of
config/config.yaml, a few steps and its checkpoint) reads its domains' token stores through a
memory map (lmforecast/data/shards.py). The stores are synthesized: four domains of uniformly
random token ids below the tokenizer's vocabulary, written as the tokenize rule writes them
(tokens.bin, documents.bin, manifest.json). Each job runs in a fresh wrapper process whose
RUSAGE_CHILDREN max RSS is the job's peak. Goal: the two peaks within 10% of each other.
"""

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import yaml
from device import cpu_name, write_result  # bench/device.py, beside this script

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow"))

from lmforecast.config import pretrain_spec  # noqa: E402
from lmforecast.data import tokenizer as tokenizer_lib  # noqa: E402
from lmforecast.data.shards import DOCUMENTS, MANIFEST, TOKENS  # noqa: E402
from lmforecast.data.world import DOMAINS, domain_documents  # noqa: E402
from lmforecast.settings import World  # noqa: E402

RUN = "s-300k-uniform"
WRAPPER = "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True); print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"


def synthesize(directory, n_tokens: int, vocab: int, eos: int, doc_len: int = 1000):
    """A token store of n_tokens random ids (documents of doc_len tokens), written in 64M-token chunks."""
    directory.mkdir(parents=True)
    rng = np.random.default_rng(0)
    with open(directory / TOKENS, "wb") as f:
        for start in range(0, n_tokens, 1 << 26):
            chunk = rng.integers(0, vocab, size=min(1 << 26, n_tokens - start), dtype=np.uint16)
            chunk[doc_len - 1 :: doc_len] = eos
            f.write(chunk.tobytes())
    ends = np.arange(doc_len, n_tokens + 1, doc_len, dtype=np.uint64)
    (directory / DOCUMENTS).write_bytes(ends.tobytes())
    info = {"dtype": "uint16", "tokens": n_tokens, "documents": len(ends), "eos_id": eos, "synthesized": True}
    (directory / MANIFEST).write_text(json.dumps(info))


def peak_rss_mb(shards, tokenizer_dir, spec, out, steps) -> float:
    cmd = [sys.executable, "-m", "lmforecast.cli", "pretrain", "--spec", json.dumps(spec), "--shards", *map(str, shards)]
    cmd += ["--tokenizer", str(tokenizer_dir), "--step-start", "0", "--step-end", str(steps), "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(REPO / "workflow")}
    proc = subprocess.run([sys.executable, "-c", WRAPPER, *cmd], capture_output=True, text=True, env=env, check=True)
    return int(proc.stdout.split()[-1]) / 1024


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--small", type=int, default=10_000_000, help="tokens of the small store (all domains)")
    ap.add_argument("--large", type=int, default=1_000_000_000, help="tokens of the large store")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--out", default=str(REPO / "bench/results/memory.json"))
    args = ap.parse_args()
    config = yaml.safe_load((REPO / "config/config.yaml").read_text())
    spec = pretrain_spec(config, RUN)
    world = World.from_dict({**config["world"], "train_docs": 50})
    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR")) as tmp:
        tmp = Path(tmp)
        texts = [d for dom in DOMAINS for d in domain_documents(world, dom, "train")]
        tok = tokenizer_lib.train_tokenizer(texts, config["tokenizer"]["vocab_size"], config["tokenizer"]["sentinels"])
        tokenizer_lib.save_hf(tok, tmp / "tokenizer", config["training"]["seq_len"])
        vocab, eos = config["tokenizer"]["vocab_size"], tokenizer_lib.eos_id(tok)
        peaks = {}
        for name, total in (("small", args.small), ("large", args.large)):
            stores = [tmp / name / d for d in DOMAINS]
            for store in stores:
                synthesize(store, total // len(DOMAINS), vocab, eos)
            peaks[name] = peak_rss_mb(stores, tmp / "tokenizer", spec, tmp / f"ckpt_{name}", args.steps)
            for store in stores:
                (store / TOKENS).unlink()
    result = {
        "benchmark": "peak RSS of a pretrain job (lmforecast pretrain, a few steps and its checkpoint) on a memory-mapped "
        "token store of about 1B tokens (ours) vs about 10M tokens (reference)",
        "ours": round(peaks["large"], 1),
        "reference": round(peaks["small"], 1),
        "ratio": round(peaks["large"] / peaks["small"], 3),
        "unit": "MB (max RSS)",
        "tokens": {"ours": args.large, "reference": args.small},
        "store_bytes": {"ours": args.large * 2, "reference": args.small * 2},
        "run": RUN,
        "steps": args.steps,
        "goal": "ratio within 1 +- 0.1",
        "device": f"{cpu_name()}, {os.cpu_count()} cores",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": "python bench/memory.py " + " ".join(sys.argv[1:]),
    }
    write_result(result, args.out, show=("ours", "reference", "ratio", "unit"))


if __name__ == "__main__":
    main()
