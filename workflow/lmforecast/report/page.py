"""results/report/index.html: one self-contained page (PNGs embedded) of the sweep, its fits and the leaderboard.

Figures are drawn by lmforecast.report_plots (those of the seed-002 fits by their own rules, see
selection_plots); captions come from workflow/report/<figure>.rst, the files `snakemake --report`
uses too, so both reports say the same. A section whose fit did not run is left out with a note.
"""

import base64
import html
import json
import math
from pathlib import Path

import polars as pl

from lmforecast.report import plots
from lmforecast.fits.frames import checkpoint_points, select_scores
from lmforecast.io import atomic_path, write_text
from lmforecast.report.leaderboard import leaderboard

CAPTIONS = Path(__file__).resolve().parents[2] / "report"  # workflow/report/
# section id -> title; the test checks every one is present
SECTIONS = {"runs": "Runs and training curves", "domains": "Domain losses vs compute", "scaling": "Scaling fits",
            "leaderboard": "Leaderboard", "pairwise": "Pairwise selection (seed 000)",
            "transfer": "Zero-shot vs fine-tuned", "relatedness": "Task and point relatedness",
            "selection": "Benchmark prediction from selected points"}
# the fits behind the sections that need SFT labels or per-example scores (the Snakefile's TRAINED_FITS)
TRAINED = ("pairwise", "transfer", "relatedness", "selection")

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


def _caption(stem: str, captions: Path, extra: str = "") -> str:
    path = captions / f"{stem}.rst"
    if not path.exists():
        raise FileNotFoundError(f"{path}: caption of figure {stem} not found (expected workflow/report/{stem}.rst)")
    return html.escape(" ".join(path.read_text().split())) + (f" {html.escape(extra)}" if extra else "")


def _figure(path: Path, captions: Path, extra: str = "", caption: str | None = None) -> str:
    """The PNG embedded, captioned from workflow/report/<caption or its stem>.rst."""
    if not path.exists() or path.stat().st_size == 0:
        raise FileNotFoundError(f"{path}: figure missing or empty")
    data = base64.b64encode(path.read_bytes()).decode()
    return (f'<figure id="fig-{path.stem}"><img alt="{html.escape(path.stem)}" src="data:image/png;base64,{data}">'
            f"<figcaption><b>{html.escape(path.stem)}</b> (<code>{html.escape(path.stem)}.png</code>, data in "
            f"<code>{html.escape(path.stem)}.parquet</code>): {_caption(caption or path.stem, captions, extra)}</figcaption></figure>")


def _cell(v):
    if isinstance(v, float):
        return "" if math.isnan(v) else f"{v:.4g}"
    return html.escape("" if v is None else str(v))


def _table(df: pl.DataFrame, sortable=False) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in df.columns)
    body = "".join("<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in row) + "</tr>" for row in df.iter_rows())
    cls = ' class="sortable"' if sortable else ""
    return f'<div class="scroll"><table{cls}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def leaderboard_html(board: pl.DataFrame) -> str:
    cols = ["question", "target", "predictor", "measure", "value", "95% interval", "n", "interval", "best"]
    head = "".join(f"<th>{c}</th>" for c in cols)
    body = ""
    for r in board.iter_rows(named=True):
        interval = "" if r["lo"] is None or r["hi"] is None else f"[{r['lo']:.3f}, {r['hi']:.3f}]"
        value = "" if r["value"] is None or math.isnan(r["value"]) else f"{r['value']:.3f}"
        cells = [(r["question"], "t"), (r["target"], "t"), (r["predictor"], "t"), (f"{r['measure']} ({r['better']} is better)", "t"),
                 (value, ""), (interval, ""), (str(r["n"]), ""), (r["interval"], "t"), ("best" if r["best"] else "", "t")]
        tds = "".join(f'<td class="{c}">{html.escape(v)}</td>' for v, c in cells)
        body += f'<tr{" class=best" if r["best"] else ""}>{tds}</tr>'
    return (f'<p><label>Filter rows: <input id="filter" placeholder="e.g. fact_qa"></label> '
            f"({board.height} rows, {int(board['best'].sum())} marked best)</p>"
            f'<div class="scroll"><table id="leaderboard" class="sortable"><thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table></div>")


def _require(path: Path, what: str) -> Path:
    if not path.exists():
        raise FileNotFoundError(f"{path}: {what} not found (its fit is configured: expected the fit rule's output)")
    return path


def _read(path: Path, what: str) -> pl.DataFrame:
    return pl.read_parquet(_require(path, what))


def _select_vs_random(path: Path) -> pl.DataFrame:
    """Per task: the benchmark's size, and at which small budgets SELECT's MAE is below random's mean."""
    rows = []
    for task, d in json.loads(_require(path, "selection summary").read_text())["tasks"].items():
        wins = [b for b in d["small_budgets"] if d["by_budget"][str(b)]["select_beats_random"]]
        rows.append({"task": task, "examples": d["n_examples"], "small budgets": ", ".join(map(str, d["small_budgets"])),
                     "SELECT beats random at": ", ".join(map(str, wins)) or "none",
                     "at every small budget": "yes" if d["select_beats_random_at_small_budgets"] else "no"})
    return pl.DataFrame(rows)


def _note(reason: str) -> str:
    return f'<p class="note">Not in this report: {html.escape(reason)}</p>'


def build_report(tables: dict, fits_dir, spec: dict, out_dir, captions=CAPTIONS) -> list[str]:
    """Write every figure the report draws (PNG + Parquet), leaderboard.parquet and index.html; return the sections."""
    out_dir, fits_dir, captions = Path(out_dir), Path(fits_dir), Path(captions)
    fit_cfg, trained = spec["scaling"], set(spec["trained_fits"])
    unknown = trained - set(TRAINED)
    if unknown:
        raise ValueError(f"report spec: trained_fits {sorted(unknown)} unknown (expected some of {list(TRAINED)})")

    def absent(name):
        if spec.get("imported"):
            return f"analysis-only (import) mode has no SFT labels or per-example scores, so fit {name} does not run."
        return f"fit {name} is not configured (config: fit.{name})."

    sections = {}
    points = checkpoint_points(tables["runs"], tables["checkpoints"], tables["domain_losses"])

    # Runs and training curves
    body = []
    runs = tables["runs"].join(points.group_by("run").agg(pl.all().sort_by("step").last()).select("run", "flops", "loss"),
                               on="run", how="left").sort("flops")
    body.append(_table(runs, sortable=True))
    if tables["checkpoints"]["train_loss"].is_not_null().any() or points.height:
        plots.plot_training_curves(tables["checkpoints"], points, out_dir / "training_curves.png")
        body.append(_figure(out_dir / "training_curves.png", captions))
    else:
        why = "the checkpoints table has neither training nor held-out losses."
        plots.empty_plot(out_dir / "training_curves.png", why, tables["checkpoints"])
        body.append(_note(why))
    sft = tables.get("sft_scores")
    if sft is not None and sft.height:
        body.append("<h3>Accuracy after SFT (evaluation split)</h3>" + _table(
            sft.filter(pl.col("metric") == "acc").pivot(on="task", index=["run", "step", "sft_method", "sft_data"], values="value")
            .sort("run", "sft_method", "sft_data"), sortable=True))
    sections["runs"] = "".join(body)

    # Domain losses
    if points.height:
        plots.plot_domain_losses(tables["domain_losses"], points, out_dir / "domain_losses.png")
        sections["domains"] = _figure(out_dir / "domain_losses.png", captions)
    else:
        plots.empty_plot(out_dir / "domain_losses.png", "the domain_losses table is empty.", tables["domain_losses"])
        sections["domains"] = _note("the domain_losses table is empty.")

    # Scaling fits
    params = _read(fits_dir / "scaling_params.parquet", "scaling parameters")
    preds = _read(fits_dir / "scaling_predictions.parquet", "scaling back-test")
    # the prompt each task's score is read with (fit.scaling.prompt: a name, {task: name}, or each task's first)
    selected = select_scores(tables["task_scores"], fit_cfg)
    used = selected.unique(subset="task", maintain_order=True)
    settings = (f"Score: {fit_cfg['metric']}, {fit_cfg['shots']}-shot; prompt per task: "
                + ", ".join(f"{task} {prompt}" for task, prompt in zip(used["task"], used["prompt"])) + ".")
    if preds.height:
        scores = selected.join(points, on=["run", "step"])
        plots.plot_loss_vs_compute(points, params, preds, out_dir / "loss_vs_compute.png")
        plots.plot_score_vs_loss(scores, preds, out_dir / "score_vs_loss.png")
        plots.plot_predicted_vs_actual(preds, out_dir / "predicted_vs_actual.png")
        sections["scaling"] = (_figure(out_dir / "loss_vs_compute.png", captions)
                               + _figure(out_dir / "score_vs_loss.png", captions, settings)
                               + _figure(out_dir / "predicted_vs_actual.png", captions, settings)
                               + "<details><summary>Back-test table (results/fits/scaling_predictions.parquet)</summary>"
                               + _table(preds, sortable=True) + "</details><details><summary>Fitted parameters (stderr: "
                               "lmfit's, from the Jacobian; stderr_boot: bootstrap over runs)</summary>"
                               + _table(params, sortable=True) + "</details>")
    else:
        why = "no scaling predictor could be fitted (see results/fits/scaling_report.txt)."
        for stem in ("loss_vs_compute", "score_vs_loss", "predicted_vs_actual"):
            plots.empty_plot(out_dir / f"{stem}.png", why, preds)
        sections["scaling"] = _note(why)

    # Pairwise selection
    pairwise = selection = None
    if "pairwise" in trained:
        pairwise = _read(fits_dir / "pairwise.parquet", "pairwise results")
        gap = _read(fits_dir / "pairwise_gap.parquet", "pairwise accuracy by gap")
        plots.plot_pairwise_accuracy(pairwise, out_dir / "pairwise_accuracy.png")
        plots.plot_pairwise_gap(pairwise, gap, out_dir / "pairwise_gap.png")
        sections["pairwise"] = (_figure(out_dir / "pairwise_accuracy.png", captions)
                                + _figure(out_dir / "pairwise_gap.png", captions))
    else:
        sections["pairwise"] = _note(absent("pairwise"))

    # Zero-shot vs fine-tuned (plots drawn by fit_transfer)
    if "transfer" in trained:
        corr = _read(fits_dir / "transfer.parquet", "transfer correlations")
        across = corr.filter(pl.col("scope") == "across_runs").drop("scope", "run")
        sections["transfer"] = ("".join(_figure(out_dir / f"transfer_{t}.png", captions, caption="transfer")
                                        for t in sorted(corr["task"].unique()))
                                + "<h3>Correlations across runs (results/fits/transfer.parquet)</h3>" + _table(across, sortable=True))
    else:
        sections["transfer"] = _note(absent("transfer"))

    if "relatedness" in trained:
        sections["relatedness"] = (_figure(out_dir / "task_relatedness.png", captions)
                                   + _figure(out_dir / "point_relatedness.png", captions))
    else:
        sections["relatedness"] = _note(absent("relatedness"))

    if "selection" in trained:
        selection = _read(fits_dir / "selection.parquet", "selection results")
        sections["selection"] = (_figure(out_dir / "selection.png", captions)
                                 + "<h3>Does SELECT beat random at small budgets? (results/fits/selection.json)</h3>"
                                 + _table(_select_vs_random(fits_dir / "selection.json")))
    else:
        sections["selection"] = _note(absent("selection"))

    board = leaderboard(preds, pairwise, selection)
    with atomic_path(out_dir / "leaderboard.parquet") as tmp:
        board.write_parquet(tmp)
    sections["leaderboard"] = f"<p>{_caption('leaderboard', captions)}</p>" + leaderboard_html(board)

    nav = "".join(f'<a href="#{k}">{html.escape(t)}</a>' for k, t in SECTIONS.items())
    content = "".join(f'<section id="{k}"><h2>{html.escape(t)}</h2>{sections[k]}</section>' for k, t in SECTIONS.items())
    page = (f'<!doctype html><html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">'
            f"<title>lmforecast report</title><style>{STYLE}</style></head><body><h1>lmforecast report</h1>"
            f"<nav>{nav}</nav>{content}<script>{SCRIPT}</script></body></html>")
    write_text(page, out_dir / "index.html")
    return list(sections)
