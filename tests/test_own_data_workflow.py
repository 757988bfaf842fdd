"""The smoke sweep on one's own corpora (tests/own_corpus.py: the standard library's text as text files,
JSONL .zst/.gz and Parquet), through Snakemake: once with a BPE trained on them, once with a pretrained
tokenizer directory saved by transformers whose EOS is `</s>` and whose ids are above 65,535."""

import json
import math

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
import yaml
from own_corpus import docstrings, module_files, save_large_vocab_tokenizer, write_corpus
from smoke import SMOKE, copy_workflow, snakemake

from lmforecast.data.shards import document_ends, open_store, write_store
from lmforecast.data.sources import heldout_documents, training_documents
from lmforecast.measure.lm import LlamaLM
from lmforecast.settings import Domain
from lmforecast.tables import SCHEMAS

MIXTURE = {"code": 0.4, "docs": 0.3, "bundled": 0.3}


def own_config(domains, tokenizer, tokens=8192) -> dict:
    """The smoke config on the own domains, smaller still: a run per size (one job each), one task, full SFT only."""
    config = yaml.safe_load(SMOKE.read_text())
    config["domains"] = domains
    config["tokenizer"] = tokenizer
    config["mixtures"] = {"own": MIXTURE}
    config["training"].update(checkpoints_per_segment=2)
    run = {"tokens": tokens, "mixture": "own", "objective": "clm", "lr": 0.005, "seed": 0}
    config["runs"] = [{"name": f"{size}-own", "size": size, **run} for size in ("xs", "s")]
    config["evaluation"].update(tasks=["sentiment"], shots=[0])
    config["sft"].update(tasks=["sentiment"], methods=["full"], multitask=False)
    config["fit"]["pairwise"].update(task_groups=[{"name": "all", "tasks": ["sentiment"]}], sft_data="single")
    return config


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    return root, write_corpus(root)


def run_sweep(workdir, config):
    copy_workflow(workdir)
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    snakemake(workdir, "aggregate")
    return workdir


def by_hand_bits_per_byte(checkpoint, text) -> float:
    """One document's bits per byte, computed here: EOS + its tokens, in windows of seq_len predicted tokens."""
    lm = LlamaLM.load(checkpoint)
    ids = [lm.start_id] + lm.tokenizer.encode(text, add_special_tokens=False).ids
    nats = 0.0
    with torch.no_grad():
        for s in range(0, len(ids) - 1, lm.max_len):
            window = torch.tensor(ids[s : s + lm.max_len + 1])
            logp = torch.log_softmax(lm.model(window[None, :-1]).float(), -1)[0]
            nats -= logp.gather(1, window[1:, None]).sum().item()
    return nats / len(text.encode("utf-8")) / math.log(2)


def check_tables_and_bits_per_byte(work, root, last_step):
    for name, schema in SCHEMAS.items():
        table = pq.read_table(work / "results" / "tables" / f"{name}.parquet")
        assert table.schema.equals(schema) and table.num_rows > 0, name
    losses = pq.read_table(work / "results/tables/domain_losses.parquet").to_pylist()
    assert {r["domain"] for r in losses} == set(MIXTURE)
    # code holds out one document (heldout_docs: 1): its domain's bits per byte is that document's
    (doc,) = heldout_documents([work / "results/heldout/code.jsonl"])["code"]
    row = next(r for r in losses if r["domain"] == "code" and r["run"] == "xs-own" and r["step"] == last_step)
    assert row["bits_per_byte"] == pytest.approx(
        by_hand_bits_per_byte(work / f"results/checkpoints/xs-own/step{last_step}", doc), rel=1e-4
    )
    assert doc == sorted((root / "code").glob("*.txt"))[0].read_text()  # the first document, in file order


def test_own_domains_with_a_trained_tokenizer(corpus, tmp_path):
    root, domains = corpus
    domains = {**domains, "code": {**domains["code"], "chunk_files": 10}}  # 25 files: 3 tokenize_chunk jobs
    work = run_sweep(tmp_path, own_config(domains, {"vocab_size": 400, "sentinels": 16, "sample_docs": 200}))
    check_tables_and_bits_per_byte(work, root, last_step=32)  # 8192 tokens of 256 per step
    # the chunks concatenated hold the same tokens as one job's store, and are deleted once merged
    code = Domain.from_dict({**domains["code"], "chunk_files": None})
    info = write_store(training_documents(code, "code"), work / "results/tokenizer", tmp_path / "one_job")
    assert json.loads((work / "results/tokens/code/manifest.json").read_text())["chunks"] == 3
    for name in ("tokens.bin", "documents.bin"):
        assert (work / "results/tokens/code" / name).read_bytes() == (tmp_path / "one_job" / name).read_bytes()
    assert info["documents"] == len(module_files()) - 1 and not list((work / "results").glob("token_chunks/code/*"))
    manifest = json.loads((work / "results/tokens/docs/manifest.json").read_text())
    assert manifest["dtype"] == "uint16" and [f["path"] for f in manifest["files"]][-1].endswith("docs_eval.jsonl.gz")
    # docs' training documents: every docstring but the 20 of the eval file, each followed by EOS
    n_docs = sum(len(docstrings(p)) for p in module_files()) - 20
    ends = document_ends(work / "results/tokens/docs")
    assert manifest["documents"] == len(ends) == n_docs and int(ends[-1]) == manifest["tokens"]
    assert len(heldout_documents([work / "results/heldout/docs.jsonl"])["docs"]) == 20


def test_own_domains_with_a_pretrained_tokenizer_of_uint32_ids(corpus, tmp_path):
    root, domains = corpus
    texts = [d for p in module_files() for d in docstrings(p)]
    save_large_vocab_tokenizer(texts, root / "hf_tokenizer")
    # fewer tokens: its 66,616-token vocabulary makes every forward pass about 100 times the trained one's
    work = run_sweep(tmp_path, own_config(domains, {"path": str(root / "hf_tokenizer"), "sentinels": 16}, tokens=2048))
    check_tables_and_bits_per_byte(work, root, last_step=8)
    manifest = json.loads((work / "results/tokens/code/manifest.json").read_text())
    eos = manifest["eos_id"]
    assert manifest["dtype"] == "uint32" and manifest["vocab_size"] > 65_536
    tokens = open_store(work / "results/tokens/code")
    assert eos == json.loads((work / "results/tokenizer/tokenizer.json").read_text())["model"]["vocab"]["</s>"]
    assert int(tokens.max()) > 65_535 and int(np.count_nonzero(tokens == eos)) == manifest["documents"]
    assert json.loads((work / "results/tokenizer/tokenizer_config.json").read_text())["eos_token"] == "</s>"
