# Tables + fits -> results/report/: the runs' own figures (PNG with its data as Parquet), the
# leaderboard, and a self-contained index.html with every fit's section. The PNGs are also flagged
# for `snakemake --report` (the fits' by their own rules), with captions from workflow/report/<figure>.rst.

import glob

import lmforecast.report

REPORT_FIGURES = ("training_curves", "domain_losses")


rule report:
    input:
        tables=[table(name) for name in lmforecast.report.TABLES],
        fits=[f for fit in FITS for f in getattr(rules, f"fit_{fit.name}").output],  # rebuilt after any fit
        captions=sorted(os.path.relpath(p) for p in glob.glob(f"{workflow.basedir}/report/*.rst")),  # an edited caption rebuilds the page
    output:
        html=report("results/report/index.html", caption="../report/index.rst", category="0 Report page"),
        leaderboard="results/report/leaderboard.parquet",
        plots=[report(f"results/report/{name}.png", caption=f"../report/{name}.rst", category="1 Runs")
               for name in REPORT_FIGURES],
        data=[f"results/report/{name}.parquet" for name in REPORT_FIGURES],
    params:
        spec=as_json({"fits": [fit.name for fit in FITS], "imported": IMPORT, "external": [] if IMPORT else list(EXTERNAL)}),
    log:
        "logs/report.log",
    shell:
        "lmforecast report --spec {params.spec:q} --tables results/tables --fits results/fits"
        " --out results/report > {log} 2>&1"
