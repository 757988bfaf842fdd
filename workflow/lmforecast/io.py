"""Atomic file output: write to a temporary name beside the target, then rename.

A job killed mid-write leaves only a `.tmp-<pid>-<name>` file, never a truncated file under
the name Snakemake (or a reader) takes as finished. A job killed by SIGKILL cannot remove
its temporary; the next write of the same target (the rerun of that job) removes it. A write
that runs out of space raises DiskFullError, one line naming the target and the free space.
"""

import errno
import json
import math
import os
import re
import shutil
from contextlib import contextmanager
from pathlib import Path


class DiskFullError(OSError):
    """A write that found its filesystem full: the target, the free space; nothing under the target's name."""


# Below this much free space, a writer's failure is the full disk's: libraries report ENOSPC without
# the errno (torch.save: RuntimeError "... iostream error"; safetensors: SafetensorError "I/O error").
LOW_SPACE = 1 << 20


def _free_bytes(path: Path) -> int:
    try:
        return shutil.disk_usage(path).free
    except OSError:
        return 0


def _disk_full(path: Path, error: BaseException) -> DiskFullError | None:
    if isinstance(error, DiskFullError):  # an inner write's: it names the file
        return error
    free = _free_bytes(path.parent)
    if (isinstance(error, OSError) and error.errno == errno.ENOSPC) or free < LOW_SPACE:
        return DiskFullError(
            errno.ENOSPC,
            f"{path}: no space left on device while writing it ({free / 2**20:.1f} MB free in {path.parent}); "
            "nothing was written under its name: free space and rerun",
        )
    return None


def disk_full_message(error: OSError) -> str:
    """One line for an ENOSPC raised outside the atomic writers (a log, a library's own file)."""
    where = Path(error.filename or ".")
    free = _free_bytes(where if where.is_dir() else where.parent)
    return f"{where}: no space left on device ({free / 2**20:.1f} MB free)"


def _tmp_name(path: Path) -> Path:
    return path.with_name(f".tmp-{os.getpid()}-{path.name}")


def _remove(path: Path):
    (shutil.rmtree if path.is_dir() and not path.is_symlink() else os.remove)(path)


def remove_stale_tmp(path: Path):
    """Remove temporaries of `path` left by killed writers (any pid). Snakemake runs one job per
    output at a time, so a temporary of this target that exists now is a dead job's."""
    pattern = re.compile(rf"\.tmp-\d+-{re.escape(path.name)}")
    for entry in os.scandir(path.parent):
        if pattern.fullmatch(entry.name):
            _remove(Path(entry.path))


def set_aside(path) -> Path:
    """Move an output found stale (altered after it was written) out of its name, so that Snakemake reruns
    the job that makes it (its output is missing): to the temporary name of a writer that cannot be alive
    (pid 0), which the rerun's write removes, as it removes a killed writer's. Nothing is deleted before
    the rerun: the file can still be looked at."""
    path = Path(path)
    aside = path.with_name(f".tmp-0-{path.name}")
    if aside.exists():
        _remove(aside)
    os.replace(path, aside)
    return aside


@contextmanager
def atomic_path(path):
    """Yield a temporary path to write to; rename it onto `path` on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_tmp(path)
    tmp = _tmp_name(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except Exception as e:
        full = _disk_full(path, e)
        if full is None:
            raise
        raise full from e
    finally:
        if tmp.exists():
            _remove(tmp)


@contextmanager
def atomic_dir(path):
    """Yield a fresh temporary directory; it replaces `path` as a whole on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_tmp(path)
    tmp = _tmp_name(path)
    tmp.mkdir()
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except Exception as e:
        full = _disk_full(path, e)
        if full is None:
            raise
        raise full from e
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def json_safe(obj):
    """NaN and infinities (an undefined correlation or accuracy) as null, so that the JSON is standard."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def write_json(obj, path):
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def write_text(text, path):
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def read_json(path):
    return json.loads(Path(path).read_text())
