# Pre-training as a chain of segment jobs: the segment ending at {step} resumes from the
# checkpoint of the previous segment (none for the first) and writes the checkpoint at {step},
# with the segment's earlier checkpoints inside it as step{k}/ (training.checkpoints_per_segment,
# default 1: a job per checkpoint).

from lmforecast.train import launch as lmlaunch


def pretrain_launcher(wildcards, resources):
    """The command that starts a segment: lmforecast itself, or under training.parallel: ddp or fsdp, torchrun
    starting resources.ranks processes of it per node (one per GPU on a GPU node), on resources.nodes nodes
    (set with the ranks in the workflow profile; several nodes: srun starts torchrun on each)."""
    parallel = config["training"].get("parallel", "none")
    return lmlaunch.launcher(parallel, resources.ranks, getattr(resources, "nodes", 1))


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
        launch=pretrain_launcher,
    threads: 1
    resources:
        ranks=1,  # data-parallel processes per node (training.parallel: ddp, fsdp); set in the workflow profile
    log:
        "logs/pretrain/{run}/step{step}.log",
    shell:
        "{params.launch} pretrain --spec {params.spec:q} --shards {input.shards} --tokenizer {input.tokenizer} {params.init}"
        " --step-start {params.step_start} --step-end {wildcards.step} {params.save_steps} --out {output} --threads {threads}"
        " > {log} 2>&1"
