# Tables -> pairwise checkpoint selection (seed 000): proxies and a learned comparator scored
# on which of two models is better after SFT; DataDecide decision accuracy across scales.


rule fit_pairwise:
    input:
        expand("results/tables/{name}.parquet", name=["runs", "checkpoints", "domain_losses", "task_scores", "sft_scores"]),
    output:
        pairwise="results/fits/pairwise.parquet",
        gap="results/fits/pairwise_gap.parquet",
        decision="results/fits/decision.parquet",
        json="results/fits/pairwise.json",
    params:
        spec=as_json(config["fit"]["pairwise"]),
    log:
        "logs/fit_pairwise.log",
    shell:
        "lmforecast fit-pairwise --spec {params.spec:q} --tables results/tables --out {output.pairwise}"
        " --gap {output.gap} --decision {output.decision} --json {output.json} > {log} 2>&1"
