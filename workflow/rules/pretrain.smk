# Pre-training as a chain of segment jobs: the segment ending at {step} resumes from the
# checkpoint of the previous segment (none for the first) and writes the checkpoint at {step},
# with the segment's earlier checkpoints inside it as step{k}/ (training.checkpoints_per_segment,
# default 1: a job per checkpoint).


rule pretrain:
    input:
        shards=TOKEN_STORES,
        tokenizer="results/tokenizer",
        init=previous_checkpoint,
    output:
        directory("results/checkpoints/{run}/step{step}"),
    params:
        spec=lambda w: as_json(lmconfig.pretrain_spec(config, w.run)),
        step_start=previous_step,
        save_steps=save_steps,
        init=lambda w, input: f"--init {input.init[0]}" if input.init else "",
    threads: 1
    log:
        "logs/pretrain/{run}/step{step}.log",
    shell:
        "lmforecast pretrain --spec {params.spec:q} --shards {input.shards} --tokenizer {input.tokenizer} {params.init}"
        " --step-start {params.step_start} --step-end {wildcards.step} {params.save_steps} --out {output} --threads {threads}"
        " > {log} 2>&1"
