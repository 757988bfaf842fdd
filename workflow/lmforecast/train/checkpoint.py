"""Checkpoint manifests: what a checkpoint is (run, step, config hash) and the checksum of each file.

Written last into the checkpoint directory (which is itself renamed into place when
complete); verified whenever a checkpoint is read, so a truncated or corrupted
checkpoint is named in an error instead of being used. Rerunning its rule
(`snakemake --forcerun pretrain` or deleting the directory) regenerates it.
"""

import hashlib
import json
from pathlib import Path

from lmforecast.io import read_json, write_json

MANIFEST = "manifest.json"


class CheckpointError(ValueError):
    pass


def config_hash(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_manifest(directory, run: str, step: int, config_hash: str):
    directory = Path(directory)
    files = {
        p.name: {"sha256": _sha256(p), "bytes": p.stat().st_size}
        for p in sorted(directory.iterdir())
        if p.is_file() and p.name != MANIFEST
    }
    write_json({"run": run, "step": step, "config_hash": config_hash, "files": files}, directory / MANIFEST)


def read_manifest(directory) -> dict:
    """The checkpoint's manifest, or CheckpointError naming it (absent, truncated, not a manifest)."""
    directory = Path(directory)
    path = directory / MANIFEST
    if not path.exists():
        raise CheckpointError(f"{directory}: no {MANIFEST}; the checkpoint is incomplete, rerun its pretrain job")
    try:
        manifest = read_json(path)
        files = manifest["files"]
        if not all(isinstance(e, dict) and {"sha256", "bytes"} <= set(e) for e in files.values()):
            raise ValueError("an entry of files lacks sha256 or bytes")
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise CheckpointError(
            f"{path}: not a readable manifest ({type(e).__name__}: {e}); truncated or edited, rerun its pretrain job"
        ) from None
    return manifest


def _check(directory: Path, name: str, expected: dict, hash_it=True):
    f = directory / name
    if not f.exists():
        raise CheckpointError(f"{f}: missing from checkpoint (listed in {MANIFEST}); rerun its pretrain job")
    if f.stat().st_size != expected["bytes"] or (hash_it and _sha256(f) != expected["sha256"]):
        raise CheckpointError(f"{f}: checksum mismatch, the file is truncated or corrupted; rerun its pretrain job")


def verify(directory) -> dict:
    """Check every file against the manifest; return the manifest or raise CheckpointError naming the file."""
    directory = Path(directory)
    manifest = read_manifest(directory)
    for name, expected in manifest["files"].items():
        _check(directory, name, expected)
    return manifest


def verify_file(directory, name: str) -> Path:
    """One file of a checkpoint (a reader that needs only it, such as aggregate's trainer_state.json),
    checked against the manifest; its path, or CheckpointError naming it."""
    directory = Path(directory)
    manifest = read_manifest(directory)
    if name not in manifest["files"]:
        raise CheckpointError(f"{directory / name}: not listed in {MANIFEST}; rerun its pretrain job")
    _check(directory, name, manifest["files"][name])
    return directory / name


# Files up to this size are hashed by `quick_check` (trainer state, configs); larger ones (the weights,
# the optimizer state) are checked by size there (hashing every checkpoint at each parse would be slow),
# and fully by `verify` when read.
QUICK_HASH_BYTES = 1 << 20


def quick_check(directory) -> str | None:
    """A cheap check of a finished checkpoint, run when the workflow is parsed: the manifest readable,
    every file of its size, the small ones hashed. The problem, or None."""
    directory = Path(directory)
    try:
        manifest = read_manifest(directory)
        for name, expected in manifest["files"].items():
            _check(directory, name, expected, hash_it=expected["bytes"] <= QUICK_HASH_BYTES)
    except CheckpointError as e:
        return str(e)
    return None
