# Called by rule aggregate: file lists come from Snakemake directly (no command-line length limit).
import sys

from lmforecast.measure.aggregate import aggregate
from lmforecast.settings import External, Run

with open(snakemake.log[0], "w") as sys.stderr:  # noqa: F821 (snakemake is injected)
    names = ("domain_losses", "task_scores", "example_scores", "sft_scores", "sft_example_scores")
    aggregate(
        runs=[Run.from_dict(r) for r in snakemake.params.runs],  # noqa: F821 (the run specs of config.run_spec)
        checkpoint_dirs=snakemake.params.checkpoints,  # noqa: F821 (inside the segments of input.segments)
        external=[External.from_dict(e) for e in snakemake.params.external],  # noqa: F821
        per_checkpoint={n: list(getattr(snakemake.input, n)) for n in names},  # noqa: F821
        outputs={n: getattr(snakemake.output, n) for n in ("runs", "checkpoints", *names)},  # noqa: F821
    )
