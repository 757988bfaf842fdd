# Analysis-only mode: finished results (ladder CSVs, lm-eval results JSON) -> the seven tables of
# results/tables/, in place of training, evaluation and aggregation (lmforecast/measure/imports.py).


rule import_tables:
    input:
        IMPORT_FILES,
    output:
        **{name: f"results/tables/{name}.parquet" for name in
           ("runs", "checkpoints", "domain_losses", "task_scores", "example_scores", "sft_scores", "sft_example_scores")},
    params:
        spec=as_json(config["import"]),
    log:
        "logs/import_tables.log",
    shell:
        "lmforecast import --spec {params.spec:q} --out-dir results/tables > {log} 2>&1"
