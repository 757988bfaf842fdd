"""The HTML pieces of the report page: embedded figures with their captions, tables, notes.

A figure is results/report/<name>.png with its data in <name>.parquet and its caption in <name>.rst
beside it (the caption file is what `snakemake --report` shows too, so both reports say the same).
"""

import base64
import html
import math
from pathlib import Path

import polars as pl

from lmforecast.io import write_text


def write_caption(text: str, png: Path):
    """The caption of figure `png`, as <name>.rst beside it (one paragraph of plain text)."""
    write_text(" ".join(text.split()) + "\n", Path(png).with_suffix(".rst"))


def caption_of(png: Path) -> str:
    path = Path(png).with_suffix(".rst")
    if not path.exists():
        raise FileNotFoundError(f"{path}: caption of figure {Path(png).stem} not found (written with the figure)")
    return " ".join(path.read_text().split())


def figure(png: Path, extra: str = "", caption: str | None = None) -> str:
    """The PNG embedded, captioned by `caption` or the <name>.rst beside it."""
    png = Path(png)
    if not png.exists() or png.stat().st_size == 0:
        raise FileNotFoundError(f"{png}: figure missing or empty")
    data = base64.b64encode(png.read_bytes()).decode()
    text = html.escape(caption if caption is not None else caption_of(png)) + (f" {html.escape(extra)}" if extra else "")
    return (
        f'<figure id="fig-{png.stem}"><img alt="{html.escape(png.stem)}" src="data:image/png;base64,{data}">'
        f"<figcaption><b>{html.escape(png.stem)}</b> (<code>{html.escape(png.stem)}.png</code>, data in "
        f"<code>{html.escape(png.stem)}.parquet</code>): {text}</figcaption></figure>"
    )


def _cell(v):
    if isinstance(v, float):
        return "" if math.isnan(v) else f"{v:.4g}"
    return html.escape("" if v is None else str(v))


def table(df: pl.DataFrame, sortable=False) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in df.columns)
    body = "".join("<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in row) + "</tr>" for row in df.iter_rows())
    cls = ' class="sortable"' if sortable else ""
    return f'<div class="scroll"><table{cls}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def note(reason: str) -> str:
    return f'<p class="note">Not in this report: {html.escape(reason)}</p>'


def require(path: Path, what: str) -> Path:
    if not Path(path).exists():
        raise FileNotFoundError(f"{path}: {what} not found (its fit is configured: expected the fit rule's output)")
    return Path(path)


def read(path: Path, what: str) -> pl.DataFrame:
    return pl.read_parquet(require(path, what))
