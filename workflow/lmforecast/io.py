"""Atomic file output: write to a temporary name beside the target, then rename.

A job killed mid-write leaves only a `.tmp-*` file, never a truncated file under
the name Snakemake (or a reader) takes as finished.
"""

import json
import os
import shutil
from contextlib import contextmanager
from pathlib import Path


def _tmp_name(path: Path) -> Path:
    return path.with_name(f".tmp-{os.getpid()}-{path.name}")


@contextmanager
def atomic_path(path):
    """Yield a temporary path to write to; rename it onto `path` on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_name(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            (shutil.rmtree if tmp.is_dir() else os.remove)(tmp)


@contextmanager
def atomic_dir(path):
    """Yield a fresh temporary directory; it replaces `path` as a whole on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_name(path)
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def write_json(obj, path):
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def write_text(text, path):
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def read_json(path):
    return json.loads(Path(path).read_text())
