# Tables -> the seed-002 analyses: zero-shot vs SFT transfer, task and point relatedness,
# and benchmark prediction from selected points (SELECT vs Anchor Points vs random).


rule fit_transfer:
    input:
        "results/tables/task_scores.parquet",
        "results/tables/sft_scores.parquet",
    output:
        table="results/fits/transfer.parquet",
        json="results/fits/transfer.json",
        plots=[report(f"results/report/transfer_{task}.png", caption="../report/transfer.rst",
                      category="4 Zero-shot vs fine-tuned", subcategory=task) for task in SFT_TASKS],
        data=expand("results/report/transfer_{task}.parquet", task=SFT_TASKS),  # each plot's data (same stem)
    params:
        spec=as_json(config["fit"]["transfer"]),
    log:
        "logs/fit_transfer.log",
    shell:
        "lmforecast fit-transfer --spec {params.spec:q} --tables results/tables --out {output.table}"
        " --json {output.json} --plot-dir results/report > {log} 2>&1"


rule fit_relatedness:
    input:
        "results/tables/task_scores.parquet",
        "results/tables/example_scores.parquet",
    output:
        tasks="results/fits/task_relatedness.parquet",
        points="results/fits/point_relatedness.parquet",
        json="results/fits/point_relatedness.json",
        heatmap=report("results/report/task_relatedness.png", caption="../report/task_relatedness.rst",
                       category="5 Relatedness"),
        mds=report("results/report/point_relatedness.png", caption="../report/point_relatedness.rst",
                   category="5 Relatedness"),
        data=["results/report/task_relatedness.parquet", "results/report/point_relatedness.parquet"],
    params:
        spec=as_json(config["fit"]["relatedness"]),
    log:
        "logs/fit_relatedness.log",
    shell:
        "lmforecast fit-relatedness --spec {params.spec:q} --tables results/tables --tasks {output.tasks}"
        " --points {output.points} --json {output.json} --heatmap {output.heatmap} --mds {output.mds} > {log} 2>&1"


rule fit_selection:
    input:
        "results/tables/example_scores.parquet",
    output:
        table="results/fits/selection.parquet",
        json="results/fits/selection.json",
        plot=report("results/report/selection.png", caption="../report/selection.rst", category="6 Point selection"),
        data="results/report/selection.parquet",
    params:
        spec=as_json(config["fit"]["selection"]),
    log:
        "logs/fit_selection.log",
    shell:
        "lmforecast fit-selection --spec {params.spec:q} --tables results/tables --out {output.table}"
        " --json {output.json} --plot {output.plot} > {log} 2>&1"
