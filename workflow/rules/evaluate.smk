# Per checkpoint: domain losses on held-out text, multiple-choice scores of every task,
# and per-example rows; one job per pretrain segment (its checkpoints in one process, every
# task), named by the segment's last step. External model directories (config `external`)
# go through the same rule, with their own tokenizer.


rule evaluate:
    input:
        checkpoint=evaluated_segment,
        domains=HELDOUT_FILES,
        task_specs=task_specs(EVAL_TASKS),
        task_examples=task_examples(EVAL_TASKS),
    output:
        domain_losses="results/evals/{run}/step{step}/domain_losses.parquet",
        task_scores="results/evals/{run}/step{step}/task_scores.parquet",
        example_scores="results/evals/{run}/step{step}/example_scores.parquet",
    params:
        spec=as_json(lmconfig.evaluation_spec(config)),
        checkpoints=evaluated_checkpoints,
        external=external_flags,
    threads: 1
    log:
        "logs/evaluate/{run}/step{step}.log",
    shell:
        "lmforecast evaluate --spec {params.spec:q} --checkpoint {params.checkpoints} --domains {input.domains}"
        " --task-specs {input.task_specs} --task-examples {input.task_examples} --domain-losses {output.domain_losses}"
        " --task-scores {output.task_scores} --example-scores {output.example_scores} --threads {threads}"
        " {params.external} > {log} 2>&1"


# A dataset task's examples (arc_easy, hellaswag, an lm-eval task, the user's YAML) from the local files of
# evaluation.task_data (or the hub), in the JSONL form of the synthetic tasks' examples.


def task_data_files(task):
    files = config["evaluation"]["task_data"][task]
    return [] if files == "hub" else list(files.values())


rule task_data:
    input:
        spec=lambda wc: task_specs([wc.task])[0],
        files=lambda wc: task_data_files(wc.task),
    output:
        "results/tasks/{task}.jsonl",
    params:
        spec=lambda wc: as_json({"files": config["evaluation"]["task_data"][wc.task]}),
    wildcard_constraints:
        task="|".join(re.escape(t) for t in lmconfig.dataset_tasks(config)) or "(?!)",
    log:
        "logs/task_data/{task}.log",
    shell:
        "lmforecast task-data --spec {params.spec:q} --task-spec {input.spec} --out {output} > {log} 2>&1"
