"""A small corpus of real text that every Python installation has, in the formats of config `domains`.

The standard library's own source files (as plain text files, one document per file), the docstrings
of its modules (JSONL, zstd-compressed, with a held-out set as gzip JSONL) and its bundled license and
README files (Parquet, one paragraph per row): the Python Software Foundation License, which permits
copying them. Written by the tests into their temporary directories, nothing stored in the repository.
"""

import ast
import gzip
import json
import os
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import zstandard

STDLIB = Path(os.__file__).parent
# Modules that exist in every CPython 3.11+, in a fixed order: the corpus is the same on every run.
MODULES = ["abc", "argparse", "base64", "bisect", "calendar", "colorsys", "contextlib", "copy", "csv", "dataclasses",
           "difflib", "enum", "fnmatch", "fractions", "functools", "glob", "heapq", "json/__init__", "json/decoder",
           "numbers", "queue", "random", "shlex", "statistics", "textwrap"]  # fmt: skip


def module_files() -> list[Path]:
    return [STDLIB / f"{m}.py" for m in MODULES if (STDLIB / f"{m}.py").is_file()]


def docstrings(path: Path) -> list[str]:
    """The module's, classes' and functions' docstrings of a source file, in source order."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = [tree] + [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))]
    return [d for n in nodes if (d := ast.get_docstring(n)) and len(d) > 40]


def bundled_texts() -> list[str]:
    """Paragraphs of the license and README files the standard library ships."""
    candidates = [Path(sys.base_prefix) / "LICENSE.txt", STDLIB / "LICENSE.txt", *sorted(STDLIB.glob("*/README*"))]
    paragraphs = []
    for path in dict.fromkeys(p for p in candidates if p.is_file()):
        text = path.read_text(encoding="utf-8", errors="replace")
        paragraphs += [p.strip() for p in text.split("\n\n") if len(p.strip()) > 80]
    return paragraphs


def write_corpus(root: Path) -> dict:
    """The three domains' files under root; returns config `domains` for them."""
    code = root / "code"
    code.mkdir(parents=True)
    for path in module_files():
        (code / f"{path.stem}_{path.parent.name}.txt").write_text(path.read_text(encoding="utf-8"))
    docs = [d for path in module_files() for d in docstrings(path)]
    held, train = docs[:20], docs[20:]
    (root / "docs").mkdir()
    half = len(train) // 2
    for i, part in enumerate((train[:half], train[half:])):
        lines = "".join(json.dumps({"doc": d, "n": j}) + "\n" for j, d in enumerate(part)).encode()
        (root / "docs" / f"part{i}.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(lines))
    with gzip.open(root / "docs_eval.jsonl.gz", "wt") as f:
        f.writelines(json.dumps({"doc": d}) + "\n" for d in held)
    pq.write_table(pa.table({"content": bundled_texts()}), root / "bundled.parquet")
    return {
        "code": {"files": [f"{code}/*.txt"], "heldout_docs": 1},
        "docs": {"files": [f"{root}/docs/*.jsonl.zst"], "text_field": "doc", "eval_files": [str(root / "docs_eval.jsonl.gz")]},
        "bundled": {"files": [str(root / "bundled.parquet")], "text_field": "content", "heldout_docs": 3},
    }


def save_large_vocab_tokenizer(texts, directory, offset: int = 66_000):
    """A byte-level BPE saved by transformers whose EOS is `</s>` and whose ids start at `offset` (> 65,535).

    The ids below `offset` are unused filler tokens: every id of real text is above the uint16 range, so a
    store that kept uint16 ids would corrupt all of them. Its post-processor adds BOS, as Llama's does.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=600,
        special_tokens=["<s>", "</s>", "<pad>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    spec = json.loads(tok.to_str())
    vocab = {f"<filler_{i}>": i for i in range(offset)}
    vocab.update({t: i + offset for t, i in spec["model"]["vocab"].items()})
    spec["model"]["vocab"] = vocab
    for added in spec["added_tokens"]:
        added["id"] += offset
    tok = Tokenizer.from_str(json.dumps(spec))
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", tok.token_to_id("<s>"))])
    hf = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>")
    hf.save_pretrained(directory)
    return hf
