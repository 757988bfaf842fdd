"""The six tables of results/tables/ of two workflow directories are equal (polars frame equality).

usage: python tests/slurm/compare_tables.py RUN_DIR REFERENCE_DIR
Exits non-zero, naming the table, when a table is missing, empty or differs in any value.
"""

import sys
from pathlib import Path

import polars as pl
from polars.testing import assert_frame_equal

from lmforecast.tables import SCHEMAS


def main(run: Path, reference: Path) -> int:
    for name in SCHEMAS:
        got, want = (pl.read_parquet(d / "results" / "tables" / f"{name}.parquet") for d in (run, reference))
        if got.height == 0:
            print(f"{name}: no rows", file=sys.stderr)
            return 1
        try:
            # same columns, types, rows in the same order and values bit for bit (no tolerance)
            assert_frame_equal(got, want, check_exact=True)
        except AssertionError as e:
            print(f"{name}: differs from {reference}:\n{e}", file=sys.stderr)
            return 1
        print(f"{name}: {got.height} rows, equal")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2])))
