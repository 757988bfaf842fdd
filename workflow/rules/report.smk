# Fits + tables -> results/report/ (PNG plots and a self-contained index.html).


rule report:
    input:
        tables=expand("results/tables/{name}.parquet",
                      name=["runs", "checkpoints", "domain_losses", "task_scores", "example_scores", "sft_scores"]),
        params="results/fits/scaling_params.parquet",
        predictions="results/fits/scaling_predictions.parquet",
    output:
        html="results/report/index.html",
        plots=["results/report/loss_vs_compute.png", "results/report/score_vs_loss.png"],
    params:
        spec=as_json(config["fit"]["scaling"]),
    log:
        "logs/report.log",
    shell:
        "lmforecast report --spec {params.spec:q} --tables results/tables --params {input.params}"
        " --predictions {input.predictions} --out results/report > {log} 2>&1"
