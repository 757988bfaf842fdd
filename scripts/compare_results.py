"""Are two finished workflow directories' tables and fits the same? (a restructure's check)

usage: python scripts/compare_results.py RUN_DIR REFERENCE_DIR

Every file of the reference's results/tables/ and results/fits/ must be in the run's: byte-identical,
or, for Parquet, the same frame after sorting its rows (a join may order rows differently, the values
must not differ). Prints one line per file; exits non-zero naming each file that differs or is missing.
"""

import filecmp
import sys
from pathlib import Path

import polars as pl
from polars.testing import assert_frame_equal


def compare(got: Path, want: Path) -> tuple[bool, str]:
    """(equal, how)."""
    if not got.exists():
        return False, "missing"
    if filecmp.cmp(got, want, shallow=False):
        return True, "byte-identical"
    if want.suffix != ".parquet":
        return False, "differs"
    a, b = pl.read_parquet(got), pl.read_parquet(want)
    try:
        assert_frame_equal(a.sort(a.columns), b.sort(b.columns), check_exact=True)
    except AssertionError as e:
        return False, f"differs: {e}"
    return True, "equal after sorting rows"


def main(run: Path, reference: Path) -> int:
    bad = 0
    for folder in ("tables", "fits"):
        for want in sorted((reference / "results" / folder).iterdir()):
            equal, how = compare(run / "results" / folder / want.name, want)
            print(f"{folder}/{want.name}: {how}")
            bad += not equal
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2])))
