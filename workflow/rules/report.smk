# Tables + fits -> results/report/: every figure as PNG with its data as Parquet, the leaderboard,
# and a self-contained index.html. The PNGs (and those of the seed-002 fits) are also flagged for
# `snakemake --report`, with captions from workflow/report/<figure>.rst (the page reads the same
# files, through the package: lmforecast/../report).

import glob

REPORT_FIGURES = {"training_curves": "1 Runs", "domain_losses": "1 Runs", "loss_vs_compute": "2 Scaling fits",
                  "score_vs_loss": "2 Scaling fits", "predicted_vs_actual": "2 Scaling fits"}
if "pairwise" in TRAINED_FITS:
    REPORT_FIGURES |= {"pairwise_accuracy": "3 Pairwise selection", "pairwise_gap": "3 Pairwise selection"}
# every output of the trained-sweep fits that run, so the report is rebuilt after any of them
FIT_RULES = {"pairwise": "fit_pairwise", "transfer": "fit_transfer", "relatedness": "fit_relatedness",
             "selection": "fit_selection"}
TRAINED_FIT_OUTPUTS = [f for fit in TRAINED_FITS for f in getattr(rules, FIT_RULES[fit]).output]


rule report:
    input:
        tables=expand("results/tables/{name}.parquet",
                      name=["runs", "checkpoints", "domain_losses", "task_scores", "sft_scores"]),
        scaling=["results/fits/scaling_params.parquet", "results/fits/scaling_predictions.parquet"],
        trained_fits=TRAINED_FIT_OUTPUTS,
        captions=sorted(glob.glob(f"{workflow.basedir}/report/*.rst")),  # an edited caption rebuilds the page
    output:
        html=report("results/report/index.html", caption="../report/index.rst", category="0 Report page"),
        leaderboard="results/report/leaderboard.parquet",
        plots=[report(f"results/report/{name}.png", caption=f"../report/{name}.rst", category=category)
               for name, category in REPORT_FIGURES.items()],
        data=[f"results/report/{name}.parquet" for name in REPORT_FIGURES],
    params:
        spec=as_json({"scaling": config["fit"]["scaling"], "trained_fits": TRAINED_FITS, "imported": IMPORT}),
    log:
        "logs/report.log",
    shell:
        "lmforecast report --spec {params.spec:q} --tables results/tables --fits results/fits"
        " --out results/report > {log} 2>&1"
