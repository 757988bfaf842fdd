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


def verify(directory) -> dict:
    """Check every file against the manifest; return the manifest or raise CheckpointError naming the file."""
    directory = Path(directory)
    path = directory / MANIFEST
    if not path.exists():
        raise CheckpointError(f"{directory}: no {MANIFEST}; the checkpoint is incomplete, rerun its pretrain job")
    manifest = read_json(path)
    for name, expected in manifest["files"].items():
        f = directory / name
        if not f.exists():
            raise CheckpointError(f"{f}: missing from checkpoint (listed in {MANIFEST}); rerun its pretrain job")
        if f.stat().st_size != expected["bytes"] or _sha256(f) != expected["sha256"]:
            raise CheckpointError(f"{f}: checksum mismatch, the file is truncated or corrupted; rerun its pretrain job")
    return manifest
