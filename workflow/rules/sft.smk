# Supervised fine-tuning of a selected checkpoint with one method: single-task on each SFT
# task (and multi-task on their union if configured), each scored on every task's eval
# split. One job per checkpoint x method, so one process start-up serves all its tasks. External
# models' checkpoints (config `external`) are fine-tuned alike, with their own tokenizer.


rule sft:
    input:
        segment=lambda w: EXTERNAL[w.run].checkpoints[int(w.step)] if w.run in EXTERNAL else segment_of(w.run, w.step),
        task_specs=task_specs(SFT_TASKS),
        task_examples=task_examples(SFT_TASKS),
        data=[d["path"] for d in config["sft"].get("data", [])],  # instruction data (sft.data)
    output:
        scores="results/sft/{run}/step{step}/{method}.parquet",
        example_scores="results/sft/{run}/step{step}/{method}.examples.parquet",
    params:
        spec=as_json(config["sft"]),
        checkpoint=lambda w: sft_model_dir(w.run, w.step),
        external=sft_external_flags,
    threads: 1
    log:
        "logs/sft/{run}/step{step}/{method}.log",
    shell:
        "lmforecast sft --spec {params.spec:q} --checkpoint {params.checkpoint} --method {wildcards.method}"
        " --task-specs {input.task_specs} --task-examples {input.task_examples} --out {output.scores}"
        " --example-scores {output.example_scores} --threads {threads} {params.external} > {log} 2>&1"
