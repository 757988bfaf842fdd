"""scripts/rule_times.py on a Snakemake log's lines (the format of Snakemake 9's log, two jobs side by side)."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

LOG = """\
Execute 2 jobs...
[Mon Nov 30 07:56:26 2026]
localrule tokenize:
    output: results/tokens/prose
    jobid: 9
[Mon Nov 30 07:56:26 2026]
localrule pretrain:
    output: results/checkpoints/s/step4
    jobid: 12
[Mon Nov 30 07:56:27 2026]
Finished jobid: 9 (Rule: tokenize)
[Mon Nov 30 07:57:30 2026]
Finished jobid: 12 (Rule: pretrain)
[Mon Nov 30 07:57:30 2026]
localrule pretrain:
    jobid: 13
[Mon Nov 30 07:57:40 2026]
Finished jobid: 13 (Rule: pretrain)
"""


def test_each_job_from_its_start_to_its_finished_line():
    spec = importlib.util.spec_from_file_location("rule_times", ROOT / "scripts" / "rule_times.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.rule_times(LOG.splitlines()) == {"tokenize": [1.0], "pretrain": [64.0, 10.0]}
