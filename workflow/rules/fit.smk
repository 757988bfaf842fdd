# Tables -> fitted predictors with standard errors, and their back-tests.

TABLES = [f"results/tables/{name}.parquet" for name in ("runs", "checkpoints", "domain_losses", "task_scores")]


rule fit_flp:
    input:
        TABLES,
    output:
        params="results/fits/flp_params.parquet",
        predictions="results/fits/flp_predictions.parquet",
        report="results/fits/flp_report.txt",
        json="results/fits/flp.json",
    params:
        spec=as_json(config["fit"]["flp"]),
    log:
        "logs/fit_flp.log",
    shell:
        "lmforecast fit-flp --spec {params.spec:q} --tables results/tables --params {output.params}"
        " --predictions {output.predictions} --report {output.report} --json {output.json} > {log} 2>&1"
