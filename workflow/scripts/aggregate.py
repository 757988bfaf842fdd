# Called by rule aggregate: file lists come from Snakemake directly (no command-line length limit).
# Its failure reaches both the log and the console: the error is written to the log before it is
# closed, and a one-line message ends the process on the real stderr (a `with open(log) as sys.stderr`
# closes the log before Python prints the traceback, and then "lost sys.stderr" is all that shows).
import sys
import traceback

from lmforecast.io import DiskFullError
from lmforecast.measure.aggregate import aggregate
from lmforecast.settings import External, Run
from lmforecast.tables import TableError
from lmforecast.train.checkpoint import CheckpointError

log = open(snakemake.log[0], "w")  # noqa: F821 (snakemake is injected)
sys.stderr = log
try:
    names = ("domain_losses", "task_scores", "example_scores", "sft_scores", "sft_example_scores")
    aggregate(
        runs=[Run.from_dict(r) for r in snakemake.params.runs],  # noqa: F821 (the run specs of config.run_spec)
        checkpoint_dirs=snakemake.params.checkpoints,  # noqa: F821 (inside the segments of input.segments)
        external=[External.from_dict(e) for e in snakemake.params.external],  # noqa: F821
        per_checkpoint={n: list(getattr(snakemake.input, n)) for n in names},  # noqa: F821
        outputs={n: getattr(snakemake.output, n) for n in ("runs", "checkpoints", "training_loss", *names)},  # noqa: F821
    )
except Exception as e:
    # the errors lmforecast names a file in are one line; anything else keeps its traceback in the log
    known = isinstance(e, (TableError, CheckpointError, DiskFullError))
    message = (e.strerror if isinstance(e, DiskFullError) else str(e)) if known else f"{type(e).__name__}: {e}"
    try:
        log.write(("" if known else traceback.format_exc()) + f"aggregate: {message}\n")
        log.close()
    except OSError:  # the log's disk is full too: the console still gets the message
        pass
    sys.stderr = sys.__stderr__
    sys.exit(f"aggregate: {message}")
sys.stderr = sys.__stderr__
log.close()
