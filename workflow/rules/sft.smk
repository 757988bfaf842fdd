# Supervised fine-tuning of a selected checkpoint on one task, scored on the task's eval split.


rule sft:
    input:
        checkpoint="results/checkpoints/{run}/step{step}",
        task_specs=task_specs(SFT_TASKS),
        task_examples=task_examples(SFT_TASKS),
    output:
        "results/sft/{run}/step{step}/{task}.parquet",
    params:
        spec=as_json(config["sft"]),
    threads: 1
    log:
        "logs/sft/{run}/step{step}/{task}.log",
    shell:
        "lmforecast sft --spec {params.spec:q} --checkpoint {input.checkpoint} --task {wildcards.task}"
        " --task-specs {input.task_specs} --task-examples {input.task_examples} --out {output} --threads {threads} > {log} 2>&1"
