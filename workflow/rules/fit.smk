# Tables -> fitted predictors with standard errors, and their back-tests.

TABLES = [f"results/tables/{name}.parquet" for name in ("runs", "checkpoints", "domain_losses", "task_scores")]


rule fit_scaling:
    input:
        TABLES,
    output:
        params="results/fits/scaling_params.parquet",
        predictions="results/fits/scaling_predictions.parquet",
        report="results/fits/scaling_report.txt",
        json="results/fits/scaling.json",
    params:
        spec=as_json(config["fit"]["scaling"]),
    log:
        "logs/fit_scaling.log",
    # one process per (family, predictor) fit, up to the cores given: the other fits are short, so
    # this one job is the workflow's tail
    threads: 2
    shell:
        "lmforecast fit-scaling --spec {params.spec:q} --tables results/tables --params {output.params}"
        " --predictions {output.predictions} --report {output.report} --json {output.json}"
        " --threads {threads} > {log} 2>&1"
