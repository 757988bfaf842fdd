# Per checkpoint: domain losses on held-out text, multiple-choice scores of every task,
# and per-example rows; one job per checkpoint (one model load, every task).


rule evaluate:
    input:
        checkpoint="results/checkpoints/{run}/step{step}",
        domains=DOMAIN_FILES,
        task_specs=task_specs(EVAL_TASKS),
        task_examples=task_examples(EVAL_TASKS),
    output:
        domain_losses="results/evals/{run}/step{step}/domain_losses.parquet",
        task_scores="results/evals/{run}/step{step}/task_scores.parquet",
        example_scores="results/evals/{run}/step{step}/example_scores.parquet",
    params:
        spec=as_json({**config["evaluation"], "domain_docs": config["world"]["valid_docs"]}),
    threads: 1
    log:
        "logs/evaluate/{run}/step{step}.log",
    shell:
        "lmforecast evaluate --spec {params.spec:q} --checkpoint {input.checkpoint} --domains {input.domains}"
        " --task-specs {input.task_specs} --task-examples {input.task_examples} --domain-losses {output.domain_losses}"
        " --task-scores {output.task_scores} --example-scores {output.example_scores} --threads {threads} > {log} 2>&1"
