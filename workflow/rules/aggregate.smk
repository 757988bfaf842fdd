# Per-segment and per-checkpoint files -> the tables of results/tables/ (schemas: lmforecast/tables.py).
import dataclasses


rule aggregate:
    input:
        segments=[segment_dir(r, end) for r, end in all_segments()],
        domain_losses=[f"results/evals/{r}/step{s}/domain_losses.parquet" for r, s in all_segments() + external_segments()],
        task_scores=[f"results/evals/{r}/step{s}/task_scores.parquet" for r, s in all_segments() + external_segments()],
        example_scores=[f"results/evals/{r}/step{s}/example_scores.parquet" for r, s in all_segments() + external_segments()],
        sft_scores=[f"results/sft/{r}/step{s}/{m}.parquet" for r, s in sft_checkpoints() for m in SFT_METHODS],
        sft_example_scores=[f"results/sft/{r}/step{s}/{m}.examples.parquet" for r, s in sft_checkpoints() for m in SFT_METHODS],
    output:
        **{name: table(name) for name in TABLES},
    params:
        runs=list(RUNS.values()),
        checkpoints=[checkpoint_dir(r, s) for r, s in all_checkpoints()],
        external=[dataclasses.asdict(e) for e in EXTERNAL.values()],
    log:
        "logs/aggregate.log",
    script:
        "../scripts/aggregate.py"
