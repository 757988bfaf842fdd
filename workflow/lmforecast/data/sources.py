"""Pre-training domains from their sources: the synthetic world, local files, or a dataset.

A domain (config `domains`, settings.Domain) reads its documents from one source:

- `world: NAME`: a domain of the synthetic world (results/world/domains/NAME.jsonl), whose
  train split is pre-trained on and whose valid split is the held-out text;
- `files`: paths or globs of plain text (one document per file or per line), JSONL (also
  .gz / .zst) with a text field, or Parquet with a text column;
- `dataset`: a `datasets.save_to_disk` directory, a local Hugging Face dataset directory, or
  a hub id (with `split`) where the hub is reachable.

JSONL, Parquet and datasets are read through `datasets` (streaming: memory does not grow with
the corpus), one file at a time so that an error names the file and the line; plain text here. Held-out documents
(the domain losses' text) are either the domain's first `heldout_docs` documents, taken out
of its training data, or the documents of `eval_files` (a Paloma-style held-out set).
"""

import glob
import itertools
import json
from collections.abc import Iterator
from pathlib import Path

from lmforecast.settings import ConfigError, Domain

WORLD_DIR = "results/world/domains"
# Suffixes (after a compression suffix) -> the format read; `format` overrides.
FORMATS = {".txt": "text", ".text": "text", ".md": "text", ".jsonl": "json", ".json": "json", ".parquet": "parquet"}
COMPRESSED = (".gz", ".zst", ".bz2", ".xz")


class DataError(ValueError):
    """A source that cannot be read as configured: names the file, the line or field, and what was expected."""


def expand(patterns, where: str) -> list[str]:
    """Paths or globs -> the files, sorted per pattern, in the order given; a path missing or a glob
    matching nothing is a ConfigError naming the field."""
    files = []
    for i, pattern in enumerate(patterns):
        if glob.has_magic(pattern):
            found = sorted(p for p in glob.glob(pattern, recursive=True) if Path(p).is_file())
            if not found:
                raise ConfigError(f"{where}[{i}]: the glob {pattern!r} matches no file")
            files += found
        elif not Path(pattern).is_file():
            raise ConfigError(f"{where}[{i}]: {pattern!r} does not exist (or is not a file)")
        else:
            files.append(pattern)
    return files


def file_format(path: str, domain: Domain) -> str:
    if domain.format:
        return {"jsonl": "json"}.get(domain.format, domain.format)
    suffixes = Path(path).suffixes
    if suffixes and suffixes[-1] in COMPRESSED:
        suffixes = suffixes[:-1]
    kind = FORMATS.get(suffixes[-1] if suffixes else "")
    if kind is None:
        raise DataError(f"{path}: unknown format; expected a name ending in one of {sorted(FORMATS)} or the domain's `format`")
    return kind


def _text_rows(path: str, domain: Domain) -> Iterator[tuple[int, dict]]:
    """Plain text read here, not by `datasets`' text builder: that costs ~0.15 s per file (measured: 25 s
    for the standard library's 168 modules, against 0.03 s here), too much for a corpus of many small files."""
    try:
        with open(path, encoding="utf-8") as f:
            if domain.document == "file":
                yield 1, {"text": f.read()}
            else:
                yield from ((n, {"text": line.rstrip("\n")}) for n, line in enumerate(f, start=1))
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot be read as UTF-8 text ({e})") from e


def _rows(path: str, kind: str, domain: Domain) -> Iterator[tuple[int, dict]]:
    """(line or row number from 1, record) of one file: JSONL and Parquet streamed by `datasets`."""
    if kind == "text":
        yield from _text_rows(path, domain)
        return
    import datasets

    datasets.disable_progress_bars()
    try:
        ds = datasets.load_dataset(kind, data_files=[path], split="train", streaming=True)
        yield from enumerate(ds, start=1)
    except Exception as e:  # datasets' and pyarrow's errors have many types; the file is what the user needs
        raise DataError(f"{path}: cannot be read as {kind} ({type(e).__name__}: {e})") from e


def _file_documents(files, domain: Domain, field_where: str) -> Iterator[str]:
    for path in files:
        kind = file_format(path, domain)
        field = "text" if kind == "text" else domain.text_field
        for n, row in _rows(path, kind, domain):
            text = row.get(field)
            if not isinstance(text, str):
                what = "line" if kind in ("json", "text") else "row"
                raise DataError(
                    f"{path}: {what} {n} has no text field {field!r} ({field_where}); "
                    f"its fields are {sorted(row)}" + ("" if text is None else f", and {field!r} is {type(text).__name__}")
                )
            if text.strip():  # an empty line or file is no document
                yield text


def _dataset_documents(domain: Domain, where: str) -> Iterator[str]:
    import datasets

    datasets.disable_progress_bars()
    path = Path(domain.dataset)
    try:
        if (path / "dataset_info.json").is_file() or (path / "dataset_dict.json").is_file():
            ds = datasets.load_from_disk(str(path))  # memory-mapped Arrow: not loaded into memory
            if isinstance(ds, datasets.DatasetDict):
                ds = ds[domain.split]
        else:  # a local dataset directory (data files, or a loading script's repo) or a hub id
            ds = datasets.load_dataset(domain.dataset, split=domain.split, streaming=True)
    except Exception as e:
        raise DataError(f"{where}.dataset: {domain.dataset!r} (split {domain.split!r}) cannot be loaded ({e})") from e
    for n, row in enumerate(ds, start=1):
        text = row.get(domain.text_field)
        if not isinstance(text, str):
            raise DataError(f"{domain.dataset}: row {n} has no text field {domain.text_field!r} ({where}.text_field)")
        if text.strip():
            yield text


def _world_documents(domain: Domain, split: str, world_dir) -> list[str]:
    from lmforecast.data.world import read_documents

    return read_documents(Path(world_dir) / f"{domain.world}.jsonl", split)


def all_documents(domain: Domain, where: str) -> Iterator[str]:
    """Every document of a files or dataset source, in order (held-out ones included)."""
    if domain.files is not None:
        return _file_documents(expand(domain.files, f"{where}.files"), domain, f"{where}.text_field")
    return _dataset_documents(domain, where)


def training_documents(domain: Domain, name: str, world_dir=WORLD_DIR) -> Iterator[str]:
    """The documents pre-trained on: a world domain's train split, or the source's documents after the held-out ones."""
    if domain.world:
        return iter(_world_documents(domain, "train", world_dir))
    where = f"domains.{name}"
    docs = all_documents(domain, where)
    n = 0 if domain.eval_files else domain.heldout_docs
    taken = sum(1 for _ in itertools.islice(docs, n))
    if taken < n:
        raise DataError(f"{where}.heldout_docs: {n} documents held out, but the domain has only {taken}")
    return _nonempty(docs, where, n)


def _nonempty(docs, where, heldout):
    first = next(docs, None)
    if first is None:
        raise DataError(f"{where}: no training document" + (f" after the {heldout} held out (heldout_docs)" if heldout else ""))
    yield first
    yield from docs


def heldout_texts(domain: Domain, name: str, world_dir=WORLD_DIR) -> list[str]:
    """The held-out documents of a domain, for its domain losses."""
    where = f"domains.{name}"
    if domain.world:
        return _world_documents(domain, "valid", world_dir)
    if domain.eval_files:
        docs = list(_file_documents(expand(domain.eval_files, f"{where}.eval_files"), domain, f"{where}.text_field"))
        if not docs:
            raise DataError(f"{where}.eval_files: no document in {list(domain.eval_files)}")
        return docs
    docs = list(itertools.islice(all_documents(domain, where), domain.heldout_docs))
    if len(docs) < domain.heldout_docs:
        raise DataError(f"{where}.heldout_docs: {domain.heldout_docs} documents held out, but the domain has only {len(docs)}")
    return docs


def write_heldout(docs: list[str], path):
    """Held-out documents as JSONL {"split": "valid", "text"}, the world's domain-file format (world.read_documents)."""
    from lmforecast.io import atomic_path

    with atomic_path(path) as tmp, open(tmp, "w") as f:
        for doc in docs:
            f.write(json.dumps({"split": "valid", "text": doc}) + "\n")


def heldout_documents(paths, limit: int | None = None) -> dict[str, list[str]]:
    """Domain -> its held-out documents (the first `limit`; None: all), from the files
    results/heldout/DOMAIN.jsonl (rule tokenize's) or the world's domain files.

    The text that every model's domain losses are measured on, trained checkpoints and external
    models alike (rule evaluate passes these files).
    """
    from lmforecast.data.world import read_documents

    return {Path(p).name.removesuffix(".jsonl"): read_documents(p, "valid", limit) for p in paths}


def file_chunks(domain: Domain, name: str) -> list[list[str]]:
    """A files domain's files in chunks of `chunk_files`, in order: one tokenize_chunk job each (none: not chunked)."""
    if domain.chunk_files is None or domain.files is None:  # (config.py rejects chunk_files on other sources)
        return []
    files = expand(domain.files, f"domains.{name}.files")
    return [files[i : i + domain.chunk_files] for i in range(0, len(files), domain.chunk_files)]


def chunk_documents(domain: Domain, name: str, files) -> Iterator[str]:
    """Every document of some of a files domain's files (a chunk), held-out ones included: the
    concatenation of the chunks leaves those out (shards.concat_stores)."""
    return _file_documents(files, domain, f"domains.{name}.text_field")


def source_files(domain: Domain, name: str, world_dir=WORLD_DIR) -> list[str]:
    """The files a domain reads (training and held-out), for the rules' inputs and the manifest."""
    if domain.world:
        return [str(Path(world_dir) / f"{domain.world}.jsonl")]
    files = expand(domain.files, f"domains.{name}.files") if domain.files is not None else []
    return files + (expand(domain.eval_files, f"domains.{name}.eval_files") if domain.eval_files else [])
