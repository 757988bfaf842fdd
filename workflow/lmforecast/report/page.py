"""results/report/index.html: one self-contained page (PNGs embedded) of the sweep, its fits and the leaderboard.

The page draws the runs' own figures (training curves, domain losses); every fit's section, figures
and leaderboard rows come from the fit registry (lmforecast/fits/registry.py), drawn by the fit's
own rule. Captions of the runs' figures come from workflow/report/<figure>.rst, those of the fits'
figures from the <figure>.rst each fit writes beside its PNG: the files `snakemake --report` uses
too, so both reports say the same. A section whose fit did not run is left out with a note.
"""

import html
import math
from pathlib import Path

import polars as pl

from lmforecast.fits.registry import registry
from lmforecast.fits.scaling.frames import checkpoint_points
from lmforecast.io import atomic_path, write_text
from lmforecast.report import plots
from lmforecast.report.html import figure, note, table
from lmforecast.report.leaderboard import leaderboard

CAPTIONS = Path(__file__).resolve().parents[2] / "report"  # workflow/report/
# the page's own sections (id -> title); each registered fit adds its own after these
OWN_SECTIONS = {"runs": "Runs and training curves", "domains": "Domain losses vs compute"}

STYLE = """body{font-family:sans-serif;max-width:1200px;margin:auto;padding:0 1em;color:#222}
img{max-width:100%;height:auto}figure{margin:1em 0}figcaption{color:#444;font-size:13px;max-width:60em}
.scroll{overflow:auto;max-height:32em;border:1px solid #ddd}
table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}
th{background:#eee;position:sticky;top:0}td.t{text-align:left}tr.best td{font-weight:bold;background:#eaf6ea}
table.sortable th{cursor:pointer}.note{color:#855;font-style:italic}nav a{margin-right:1em}"""

# Click a header to sort by it (numbers as numbers), again to reverse; the input filters rows by text.
SCRIPT = """document.querySelectorAll('table.sortable th').forEach((th,i)=>th.addEventListener('click',()=>{
const tb=th.closest('table').tBodies[0],rows=[...tb.rows],dir=th.dataset.dir=th.dataset.dir==='1'?'-1':'1';
const key=r=>{const t=r.cells[i].dataset.v??r.cells[i].textContent,n=parseFloat(t);return isNaN(n)?t:n};
rows.sort((a,b)=>{const x=key(a),y=key(b);return (x>y?1:x<y?-1:0)*dir});rows.forEach(r=>tb.appendChild(r))}));
const f=document.getElementById('filter');if(f)f.addEventListener('input',()=>{const q=f.value.toLowerCase();
document.querySelectorAll('#leaderboard tbody tr').forEach(r=>r.style.display=r.textContent.toLowerCase().includes(q)?'':'none')});"""


def _caption(stem: str, captions: Path) -> str:
    path = captions / f"{stem}.rst"
    if not path.exists():
        raise FileNotFoundError(f"{path}: caption of figure {stem} not found (expected workflow/report/{stem}.rst)")
    return " ".join(path.read_text().split())


def leaderboard_html(board: pl.DataFrame) -> str:
    cols = ["question", "target", "predictor", "measure", "value", "95% interval", "n", "interval", "best"]
    head = "".join(f"<th>{c}</th>" for c in cols)
    body = ""
    for r in board.iter_rows(named=True):
        interval = "" if r["lo"] is None or r["hi"] is None else f"[{r['lo']:.3f}, {r['hi']:.3f}]"
        value = "" if r["value"] is None or math.isnan(r["value"]) else f"{r['value']:.3f}"
        cells = [
            (r["question"], "t"),
            (r["target"], "t"),
            (r["predictor"], "t"),
            (f"{r['measure']} ({r['better']} is better)", "t"),
            (value, ""),
            (interval, ""),
            (str(r["n"]), ""),
            (r["interval"], "t"),
            ("best" if r["best"] else "", "t"),
        ]
        tds = "".join(f'<td class="{c}">{html.escape(v)}</td>' for v, c in cells)
        body += f"<tr{' class=best' if r['best'] else ''}>{tds}</tr>"
    return (
        f'<p><label>Filter rows: <input id="filter" placeholder="e.g. fact_qa"></label> '
        f"({board.height} rows, {int(board['best'].sum())} marked best)</p>"
        f'<div class="scroll"><table id="leaderboard" class="sortable"><thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table></div>"
    )


def sections() -> dict:
    """Section id -> title: the page's own, then every registered fit's, then the leaderboard."""
    return {**OWN_SECTIONS, **{fit.name: fit.title for fit in registry()}, "leaderboard": "Leaderboard"}


def build_report(tables: dict, fits_dir, spec: dict, out_dir, captions=CAPTIONS) -> list[str]:
    """Write the page's own figures (PNG + Parquet), leaderboard.parquet and index.html; return the sections.

    spec: {"fits": the fits that ran (their outputs are in fits_dir, their figures in out_dir),
    "imported": analysis-only mode, "external": the runs that are external models (config `external`)}."""
    out_dir, fits_dir, captions = Path(out_dir), Path(fits_dir), Path(captions)
    ran = set(spec["fits"])
    unknown = ran - {fit.name for fit in registry()}
    if unknown:
        raise ValueError(
            f"report spec: fits {sorted(unknown)} are not registered (expected some of {[fit.name for fit in registry()]})"
        )

    def absent(fit):
        if spec.get("imported") and fit.needs_training:
            return f"analysis-only (import) mode has no SFT labels or per-example scores, so fit {fit.name} does not run" + (
                f" with these settings (fit.{fit.name} in the README: a part of it runs on imported scores)."
                if callable(fit.needs_training)
                else "."
            )
        return f"fit {fit.name} is not configured (config: fit.{fit.name})."

    body = {}
    points = checkpoint_points(tables["runs"], tables["checkpoints"], tables["domain_losses"])

    # Runs and training curves
    parts = []
    runs = (
        tables["runs"]
        .join(points.group_by("run").agg(pl.all().sort_by("step").last()).select("run", "flops", "loss"), on="run", how="left")
        .sort("flops")
    )
    external = spec.get("external", [])
    if external:  # published models, evaluated (and fine-tuned) here but not trained: name them
        steps = tables["checkpoints"].group_by("run").agg(pl.len()).rows()
        n = dict(steps)
        parts.append(
            "<p>External models (published checkpoints, evaluated here, not trained here): "
            + ", ".join(
                f"{html.escape(name)} ({n.get(name, 0)} checkpoint{'s' if n.get(name, 0) != 1 else ''})" for name in external
            )
            + ".</p>"
        )
    parts.append(table(runs, sortable=True))
    steps = tables.get("training_loss")
    if tables["checkpoints"]["train_loss"].is_not_null().any() or points.height or (steps is not None and steps.height):
        plots.plot_training_curves(tables["checkpoints"], points, out_dir / "training_curves.png", steps)
        parts.append(figure(out_dir / "training_curves.png", caption=_caption("training_curves", captions)))
    else:
        why = "the checkpoints table has neither training nor held-out losses."
        plots.empty_plot(out_dir / "training_curves.png", why, tables["checkpoints"])
        parts.append(note(why))
    sft = tables.get("sft_scores")
    if sft is not None and sft.height:
        parts.append(
            "<h3>Accuracy after SFT (evaluation split)</h3>"
            + table(
                sft.filter(pl.col("metric") == "acc")
                .pivot(on="task", index=["run", "step", "sft_method", "sft_data"], values="value")
                .sort("run", "sft_method", "sft_data"),
                sortable=True,
            )
        )
    body["runs"] = "".join(parts)

    # Domain losses
    if points.height:
        plots.plot_domain_losses(tables["domain_losses"], points, out_dir / "domain_losses.png")
        body["domains"] = figure(out_dir / "domain_losses.png", caption=_caption("domain_losses", captions))
    else:
        plots.empty_plot(out_dir / "domain_losses.png", "the domain_losses table is empty.", tables["domain_losses"])
        body["domains"] = note("the domain_losses table is empty.")

    # Every registered fit: its section if it ran, a note if not; the leaderboard from those that ran
    rows = []
    for fit in registry():
        if fit.name not in ran:
            body[fit.name] = note(absent(fit))
            continue
        body[fit.name] = fit.section(fits_dir, out_dir)
        if fit.leaderboard is not None:
            rows += fit.leaderboard(fits_dir)
    board = leaderboard(rows)
    with atomic_path(out_dir / "leaderboard.parquet") as tmp:
        board.write_parquet(tmp)
    body["leaderboard"] = f"<p>{html.escape(_caption('leaderboard', captions))}</p>" + leaderboard_html(board)

    titles = sections()
    nav = "".join(f'<a href="#{k}">{html.escape(t)}</a>' for k, t in titles.items())
    content = "".join(f'<section id="{k}"><h2>{html.escape(t)}</h2>{body[k]}</section>' for k, t in titles.items())
    page = (
        f'<!doctype html><html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">'
        f"<title>lmforecast report</title><style>{STYLE}</style></head><body><h1>lmforecast report</h1>"
        f"<nav>{nav}</nav>{content}<script>{SCRIPT}</script></body></html>"
    )
    write_text(page, out_dir / "index.html")
    return list(titles)
