# Analysis-only mode: finished results (ladder CSVs, lm-eval results JSON) -> the tables of results/tables/
# (training_loss empty: imports have no training steps), in place of training, evaluation and aggregation
# (lmforecast/measure/imports.py).


rule import_tables:
    input:
        IMPORT_FILES,
    output:
        **{name: table(name) for name in TABLES},
    params:
        spec=as_json(config["import"]),
    log:
        "logs/import_tables.log",
    shell:
        "lmforecast import --spec {params.spec:q} --out-dir results/tables > {log} 2>&1"
