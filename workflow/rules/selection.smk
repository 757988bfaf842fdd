# Tables -> the seed-002 analyses: zero-shot vs SFT transfer, task and point relatedness,
# and benchmark prediction from selected points (SELECT vs Anchor Points vs random).


rule fit_transfer:
    input:
        "results/tables/task_scores.parquet",
        "results/tables/sft_scores.parquet",
    output:
        table="results/fits/transfer.parquet",
        json="results/fits/transfer.json",
        plots=expand("results/report/transfer_{task}.png", task=SFT_TASKS),
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
        heatmap="results/report/task_relatedness.png",
        mds="results/report/point_relatedness.png",
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
        plot="results/report/selection.png",
    params:
        spec=as_json(config["fit"]["selection"]),
    log:
        "logs/fit_selection.log",
    shell:
        "lmforecast fit-selection --spec {params.spec:q} --tables results/tables --out {output.table}"
        " --json {output.json} --plot {output.plot} > {log} 2>&1"
