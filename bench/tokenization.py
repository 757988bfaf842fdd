"""Tokenize-stage throughput (not bench/tokenize.py: that name would shadow the standard library's
`tokenize` for every script in bench/): lmforecast's token store writer vs a plain `tokenizers` encode_batch loop.

    python bench/tokenization.py        # the standard library's *.py files (about 4.7 MB), BPE of 4096; ~2 minutes

Ours is what a tokenize job does (lmforecast/data/shards.py write_store over sources.all_documents):
the files read as sources.py reads plain text (one document per file), encoded in batches by 1 or 2 worker
processes, written as uint16 tokens with document ends and a manifest. The reference is the
plain loop a user would write: read each file, `encode_batch` in batches of the same size, append
the ids to a list. Both single-threaded per process (TOKENIZERS_PARALLELISM=false), so that
"per process" means one core. Rounds alternate ours and the reference (ABBA); each figure is the
median. Goal: ours with p processes >= 0.9 x p x the reference (the plain loop in one process).
"""

import argparse
import datetime
import glob
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ["TOKENIZERS_PARALLELISM"] = "false"
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow"))

from device import cpu_name, write_result  # noqa: E402 (bench/device.py, beside this script)
from tokenizers import Tokenizer  # noqa: E402

from lmforecast.data import tokenizer as tokenizer_lib  # noqa: E402
from lmforecast.data.shards import write_store  # noqa: E402
from lmforecast.data.sources import all_documents  # noqa: E402
from lmforecast.settings import Domain  # noqa: E402

BATCH = 512


def reference(files, tokenizer_dir) -> int:
    tok = Tokenizer.from_file(str(Path(tokenizer_dir) / "tokenizer.json"))
    eos = tok.token_to_id(tokenizer_lib.EOS)
    ids = []
    for i in range(0, len(files), BATCH):
        docs = [Path(f).read_text() for f in files[i : i + BATCH]]
        for enc in tok.encode_batch(docs):
            ids.extend(enc.ids)
            ids.append(eos)
    return len(ids)


def ours(domain, tokenizer_dir, out, workers) -> int:
    return write_store(all_documents(domain, "bench"), tokenizer_dir, out, workers=workers, batch_docs=BATCH)["tokens"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--out", default=str(REPO / "bench/results/tokenize.json"))
    args = ap.parse_args()
    stdlib = Path(os.__file__).parent
    files = sorted(glob.glob(f"{stdlib}/*.py"))
    n_bytes = sum(Path(f).stat().st_size for f in files)
    domain = Domain(files=tuple(files), format="text", heldout_docs=1)
    with tempfile.TemporaryDirectory() as tmp:
        tok_dir = Path(tmp) / "tokenizer"
        tok = tokenizer_lib.train_tokenizer((Path(f).read_text() for f in files[::4]), 4096, sentinels=16)
        tokenizer_lib.save_hf(tok, tok_dir, 1024)
        times = {"reference": [], "ours_1": [], "ours_2": []}
        tokens = {}
        for r in range(args.rounds):
            order = list(times) if r % 2 == 0 else list(times)[::-1]
            for name in order:
                t = time.perf_counter()
                if name == "reference":
                    tokens[name] = reference(files, tok_dir)
                else:
                    tokens[name] = ours(domain, tok_dir, Path(tmp) / f"store_{r}_{name}", int(name[-1]))
                times[name].append(time.perf_counter() - t)
    assert len(set(tokens.values())) == 1, tokens  # the same tokens, counted both ways
    n = tokens["reference"]
    tps = {name: n / statistics.median(ts) for name, ts in times.items()}
    result = {
        "benchmark": "tokenize stage: lmforecast write_store (datasets reading, worker processes, memory-mapped store) "
        "vs a plain tokenizers encode_batch loop in one process, the same files and tokenizer",
        "ours": round(tps["ours_1"], 1),
        "reference": round(tps["reference"], 1),
        "ratio": round(tps["ours_1"] / tps["reference"], 3),
        "unit": "tokens/s",
        "per_process": {
            "ours_1_process": round(tps["ours_1"] / tps["reference"], 3),
            "ours_2_processes": round(tps["ours_2"] / (2 * tps["reference"]), 3),
            "note": "ours with p processes / (p x the reference's one process); goal >= 0.9",
        },
        "tokens_per_second": {k: round(v, 1) for k, v in tps.items()},
        "seconds": {k: [round(x, 3) for x in v] for k, v in times.items()},
        "tokens": n,
        "bytes": n_bytes,
        "files": len(files),
        "device": f"{cpu_name()}, {os.cpu_count()} cores (load average {os.getloadavg()[0]:.1f} at the end)",
        "python": platform.python_version(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": "python bench/tokenization.py " + " ".join(sys.argv[1:]),
    }
    write_result(result, args.out, show=("ours", "reference", "ratio", "per_process"))


if __name__ == "__main__":
    main()
