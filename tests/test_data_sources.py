"""Own data: domains read from each source format, held-out text, the token store, and bad input named."""

import copy
import gzip
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
import zstandard

from lmforecast.config import validate
from lmforecast.data import tokenizer as tokenizer_lib
from lmforecast.data.shards import batches, concat_stores, document_ends, get_batch, load_shards, open_store, write_store
from lmforecast.data.sources import DataError, heldout_texts, training_documents
from lmforecast.settings import ConfigError, Domain

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
DOCS = [f"document {i}: " + "some words here. " * (i % 5 + 1) for i in range(12)]


def jsonl(docs, field="text"):
    return "".join(json.dumps({field: d, "id": i}) + "\n" for i, d in enumerate(docs))


@pytest.fixture
def files(tmp_path):
    """The same 12 documents in every format a domain reads."""
    (tmp_path / "a.jsonl").write_text(jsonl(DOCS[:6]))
    with gzip.open(tmp_path / "b.jsonl.gz", "wt") as f:
        f.write(jsonl(DOCS[6:]))
    (tmp_path / "c.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(jsonl(DOCS[6:]).encode()))
    pq.write_table(pa.table({"content": DOCS}), tmp_path / "d.parquet")
    (tmp_path / "lines.txt").write_text("\n".join(DOCS) + "\n\n")
    for i, d in enumerate(DOCS):
        (tmp_path / f"doc{i:02d}.txt").write_text(d)
    return tmp_path


def read(spec, name="dom"):
    domain = Domain.from_dict(spec)
    return heldout_texts(domain, name), list(training_documents(domain, name))


def test_every_format_reads_the_same_documents_and_holds_out_the_first(files):
    for spec in [
        {"files": [str(files / "a.jsonl"), str(files / "b.jsonl.gz")]},
        {"files": [str(files / "d.parquet")], "text_field": "content"},
        {"files": [str(files / "lines.txt")], "document": "line"},
        {"files": [str(files / "doc*.txt")]},
    ]:
        assert read({**spec, "heldout_docs": 2}) == (DOCS[:2], DOCS[2:]), spec
    held, train = read({"files": [str(files / "a.jsonl")], "eval_files": [str(files / "c.jsonl.zst")]})
    assert held == DOCS[6:] and train == DOCS[:6]


def test_a_dataset_saved_to_disk_is_a_source(files):
    import datasets

    datasets.Dataset.from_dict({"text": DOCS}).save_to_disk(str(files / "saved"))
    assert read({"dataset": str(files / "saved"), "heldout_docs": 3}) == (DOCS[:3], DOCS[3:])


def test_batches_are_cut_by_size_not_by_count():
    docs = ["x" * 10] * 5 + ["y" * 100] + ["z"]
    assert [len(b) for b in batches(iter(docs), 25)] == [3, 3, 1]
    assert sum(batches(iter(docs), 25), []) == docs


def test_a_local_hugging_face_dataset_directory_is_a_source(files):
    """A dataset repository as the hub serves it, cloned locally: data files per split and a dataset card;
    datasets.load_dataset(path) reads it (its split names from the file names)."""
    repo = files / "hf_repo"
    (repo / "data").mkdir(parents=True)
    (repo / "data" / "train-00000-of-00001.jsonl").write_text(jsonl(DOCS[:8], field="body"))
    (repo / "data" / "test-00000-of-00001.jsonl").write_text(jsonl(DOCS[8:], field="body"))
    (repo / "README.md").write_text("---\nlicense: cc0-1.0\n---\n# Twelve documents\n")
    assert read({"dataset": str(repo), "text_field": "body", "heldout_docs": 3}) == (DOCS[:3], DOCS[3:8])
    assert read({"dataset": str(repo), "split": "test", "text_field": "body", "heldout_docs": 1}) == (DOCS[8:9], DOCS[9:])
    with pytest.raises(DataError, match=r"domains\.dom\.dataset: .*hf_repo' \(split 'valid'\) cannot be loaded"):
        read({"dataset": str(repo), "split": "valid", "text_field": "body", "heldout_docs": 1})


@pytest.mark.parametrize("workers", [1, 2])
def test_the_store_holds_the_documents_tokens_each_followed_by_eos(files, tiny_tokenizer, workers, tmp_path):
    tok = tokenizer_lib.load(tiny_tokenizer)
    info = write_store(iter(DOCS * 4), tiny_tokenizer, tmp_path / "store", workers=workers, batch_chars=60)
    tokens, ends = open_store(tmp_path / "store"), document_ends(tmp_path / "store")
    assert isinstance(tokens, np.memmap) and tokens.dtype == np.uint16 and info["documents"] == 4 * len(DOCS)
    expected = [i for e in tok.encode_batch(DOCS * 4) for i in [*e.ids, tokenizer_lib.eos_id(tok)]]
    assert tokens.tolist() == expected and int(ends[-1]) == len(expected)
    assert tokens[int(ends[0]) - 1] == tokenizer_lib.eos_id(tok)
    rows, _ = get_batch(load_shards({"d": tmp_path / "store"}), {"d": 1.0}, 0, 0, 2, 8)
    assert rows.shape == (2, 9)


def test_a_store_of_more_than_65536_tokens_holds_encode_batchs_ids_as_uint32(tiny_tokenizer, tmp_path):
    # The store encodes with encode_batch_fast (no offsets): its ids must be encode_batch's, above 65,535 too.
    tok = tokenizer_lib.load(tiny_tokenizer)
    tok.add_tokens([f"zq{i}" for i in range(66_000)])  # ids 316.. 66,315: words of the documents below
    tokenizer_lib.save_hf(tok.backend, tmp_path / "big", 64)
    docs = [f"{d} zq{65_990 + i} zq{i}" for i, d in enumerate(DOCS)]
    info = write_store(iter(docs), tmp_path / "big", tmp_path / "store", batch_chars=60)
    tokens = open_store(tmp_path / "store")
    expected = [i for e in tok.encode_batch(docs) for i in [*e.ids, tokenizer_lib.eos_id(tok)]]
    assert info["dtype"] == "uint32" and tokens.dtype == np.uint32 and max(expected) > 65_535
    assert tokens.tolist() == expected


def with_domains(domains, mixture=None):
    config = copy.deepcopy(DEFAULT)
    config["domains"] = domains
    config["mixtures"]["uniform"] = mixture or {name: 1 / len(domains) for name in domains}
    for run in config["runs"]:  # facts_heavy, used by no run, names the world's domains: not checked
        run["mixture"] = "uniform"
    return config


def config_error(config) -> str:
    with pytest.raises(ConfigError) as e:
        validate(config)
    return str(e.value)


def test_bad_paths_tokenizers_and_mixtures_stop_validation_naming_the_field(files):
    ok = {"files": [str(files / "a.jsonl")], "heldout_docs": 1}
    validate(with_domains({"web": ok, "facts": {"world": "facts"}}))
    message = config_error(with_domains({"web": {**ok, "files": [str(files / "missing.jsonl")]}}))
    assert f"domains.web.files[0]: '{files}/missing.jsonl' does not exist" in message
    message = config_error(with_domains({"web": {**ok, "files": [str(files / "*.csv")]}}))
    assert f"domains.web.files[0]: the glob '{files}/*.csv' matches no file" in message
    message = config_error(with_domains({"web": ok}, mixture={"web": 0.5, "docs": 0.5}))
    assert "mixtures.uniform: 'docs' is not one of the configured domains ['web']" in message
    message = config_error(with_domains({"web": {"files": [str(files / "a.jsonl")]}}))
    assert "domains.web: give exactly one of heldout_docs" in message
    (files / "empty_tokenizer").mkdir()
    config = with_domains({"web": ok})
    config["tokenizer"]["path"] = str(files / "empty_tokenizer")
    assert f"tokenizer.path: '{files}/empty_tokenizer' has no tokenizer files; expected one of" in config_error(config)
    with pytest.raises(ValueError, match="empty_tokenizer' has no tokenizer files"):
        tokenizer_lib.import_hf(files / "empty_tokenizer", sentinels=4)


def test_bad_data_is_named_with_its_file_and_line(files):
    (files / "bad.jsonl").write_text(jsonl(DOCS[:3]) + json.dumps({"body": "x"}) + "\n")
    with pytest.raises(DataError, match=r"bad\.jsonl: line 4 has no text field 'text' \(domains\.dom\.text_field\)"):
        read({"files": [str(files / "bad.jsonl")], "heldout_docs": 1})
    (files / "broken.parquet").write_bytes(b"PAR1 not really parquet")
    with pytest.raises(DataError, match=r"broken\.parquet: cannot be read as parquet"):
        read({"files": [str(files / "broken.parquet")], "heldout_docs": 1})
    with pytest.raises(DataError, match=r"domains\.dom\.heldout_docs: 20 documents held out, but the domain has only 6"):
        read({"files": [str(files / "a.jsonl")], "heldout_docs": 20})
    (files / "blank.txt").write_text("\n\n  \n")
    with pytest.raises(DataError, match=r"domains\.dom: no training document"):
        read({"files": [str(files / "blank.txt")], "document": "line", "eval_files": [str(files / "a.jsonl")]})


def tokenize_in_chunks(spec, tokenizer, out, name="dom"):
    """What rules tokenize_chunk and tokenize do for a domain with chunk_files, in this process."""
    from lmforecast.cli import main
    from lmforecast.data.sources import file_chunks

    chunks = [str(out / f"chunk{i}") for i in range(len(file_chunks(Domain.from_dict(spec), name)))]
    for i, chunk in enumerate(chunks):
        main(
            [
                "tokenize-chunk",
                "--spec",
                json.dumps(spec),
                "--domain",
                name,
                "--chunk",
                str(i),
                "--tokenizer",
                str(tokenizer),
                "--out",
                chunk,
            ]
        )
    heldout = str(out / "heldout.jsonl")
    main(["tokenize", "--spec", json.dumps(spec), "--domain", name, "--tokenizer", str(tokenizer), "--out", str(out / "store"), "--heldout", heldout, "--chunks", *chunks])  # fmt: skip
    return out / "store", len(chunks)


@pytest.mark.parametrize("held", [{"heldout_docs": 7}, {"eval_files": ["a.jsonl"]}])
def test_tokenizing_in_chunks_of_files_makes_the_same_store(files, tiny_tokenizer, tmp_path, held):
    held = {k: [str(files / f) for f in v] if k == "eval_files" else v for k, v in held.items()}
    whole = {"files": [str(files / "doc*.txt")], **held}
    from lmforecast.cli import main

    main(["tokenize", "--spec", json.dumps(whole), "--domain", "dom", "--tokenizer", str(tiny_tokenizer), "--out", str(tmp_path / "whole"), "--heldout", str(tmp_path / "whole.jsonl")])  # fmt: skip
    # 12 one-document files in chunks of 5: the 7 held out span two chunks
    store, n_chunks = tokenize_in_chunks({**whole, "chunk_files": 5}, tiny_tokenizer, tmp_path)
    assert n_chunks == 3
    for name in ("tokens.bin", "documents.bin"):
        assert (store / name).read_bytes() == (tmp_path / "whole" / name).read_bytes(), name
    chunked, one = (json.loads((d / "manifest.json").read_text()) for d in (store, tmp_path / "whole"))
    assert {k: v for k, v in chunked.items() if k not in ("source", "chunks")} == {k: v for k, v in one.items() if k != "source"}
    assert (tmp_path / "heldout.jsonl").read_text() == (tmp_path / "whole.jsonl").read_text()
    other = tmp_path / "other_tokenizer"
    tokenizer_lib.save_hf(tokenizer_lib.train_tokenizer(DOCS, 280, sentinels=2), other, 64)
    with pytest.raises(DataError, match=r"chunk0: made with another tokenizer than .*other_tokenizer"):
        concat_stores([tmp_path / "chunk0"], tmp_path / "mixed", other)


def test_chunks_that_leave_no_training_document_are_an_error(files, tiny_tokenizer, tmp_path):
    spec = {"files": [str(files / "doc0*.txt")], "heldout_docs": 10, "chunk_files": 4}
    with pytest.raises(SystemExit, match=r"domains\.dom: no training document after the 10 held out \(heldout_docs\)"):
        tokenize_in_chunks(spec, tiny_tokenizer, tmp_path)
    message = config_error(with_domains({"web": {"dataset": str(files / "saved"), "heldout_docs": 1, "chunk_files": 2}}))
    assert "domains.web.chunk_files: only a files source is tokenized in chunks of files" in message


def test_the_own_data_example_validates_once_its_paths_are_filled_in(tmp_path, monkeypatch, capsys):
    """config/examples/own-data.yaml with /data/corpus replaced by a directory holding a file per glob,
    validated as its comment says (lmforecast validate, the pretrain job's memory given): valid, and no key
    of its sections silently taken from the default (no warning; the default's unused mixtures are not keys)."""
    from lmforecast.cli import main
    from lmforecast.config import set_pretrain_mem_mb

    example = (ROOT / "config" / "examples" / "own-data.yaml").read_text()
    (tmp_path / "my.yaml").write_text(example.replace("/data/corpus", str(tmp_path)))
    for d in ("code/lib", "docs", "docs_eval", "man"):
        (tmp_path / d).mkdir(parents=True)
    (tmp_path / "code/lib/a.py").write_text("print('hello')\n")
    (tmp_path / "code/lib/b.rs").write_text("fn main() {}\n")
    (tmp_path / "docs/p.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(jsonl(DOCS).encode()))
    with gzip.open(tmp_path / "docs_eval/e.jsonl.gz", "wt") as f:
        f.write(jsonl(DOCS))
    pq.write_table(pa.table({"content": DOCS}), tmp_path / "man/m.parquet")
    monkeypatch.chdir(ROOT)  # the default config it is merged onto: config/config.yaml
    try:
        main(["validate", str(tmp_path / "my.yaml"), "--pretrain-mem-mb", "82000"])
        assert "warning" not in capsys.readouterr().err
        with pytest.raises(SystemExit, match=r"sizes\.l: training it needs about 81,470 MB"):
            main(["validate", str(tmp_path / "my.yaml"), "--pretrain-mem-mb", "60000"])
    finally:
        set_pretrain_mem_mb(None)  # the module's setting, not this test's only
