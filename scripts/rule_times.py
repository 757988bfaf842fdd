"""Wall seconds per rule from a Snakemake log: each job from its start to its "Finished jobid" line.

    python scripts/rule_times.py .snakemake/log/SOME.snakemake.log

Prints, per rule, the number of jobs, their wall seconds summed and the longest job (the README's per-stage
figures). Jobs that ran side by side each count their own wall time.
"""

import re
import sys
from collections import defaultdict
from datetime import datetime

STAMP = re.compile(r"\[(\w{3} \w{3} +\d+ [\d:]+ \d{4})\]")
RULE = re.compile(r"(?:local)?(?:checkpoint|rule) (\w+):")
JOBID = re.compile(r"\s*jobid: (\d+)")
FINISHED = re.compile(r"Finished jobid: (\d+)")


def rule_times(lines) -> dict[str, list[float]]:
    now = rule = started = None
    jobs, seconds = {}, defaultdict(list)
    for line in lines:
        if m := STAMP.match(line):
            now = datetime.strptime(m.group(1), "%a %b %d %H:%M:%S %Y")
        elif m := RULE.match(line.strip()):
            rule, started = m.group(1), now
        elif rule and (m := JOBID.match(line)):
            jobs[m.group(1)], rule = (rule, started), None
        elif (m := FINISHED.search(line)) and m.group(1) in jobs:
            name, start = jobs[m.group(1)]
            seconds[name].append((now - start).total_seconds())
    return seconds


def main(argv=None):
    path = (argv or sys.argv[1:])[0]
    with open(path) as f:
        seconds = rule_times(f.read().splitlines())
    for name, s in sorted(seconds.items(), key=lambda kv: -sum(kv[1])):
        print(f"{name:18s} jobs {len(s):3d}  sum {sum(s):6.0f} s  longest {max(s):5.0f} s")


if __name__ == "__main__":
    main()
