"""How long Snakemake takes to plan a large sweep: `snakemake -n` on a generated config.

    make install && .venv/bin/python bench/dag.py      # writes bench/results/dag.json

The target sweep is 1000 runs x 20 checkpoints x 10 tasks. The schema has 4 tasks, and the
number of tasks does not change the number of jobs: one evaluate job scores every task of a
segment's checkpoints, one sft job per checkpoint and method fine-tunes on every SFT task. So the
sweep here is 1000 runs x 20 checkpoints with all 4 tasks evaluated and fine-tuned and the
default config's SFT methods (full, lora). It is planned twice, in one run: with
training.checkpoints_per_segment = 4 (`ours`: 5 pretrain and 5 evaluate jobs per run, 12,011 jobs)
and with 1, a job per checkpoint (20,000 pretrain + 20,000 evaluate + 2,000 sft + 11 = 42,011).
Snakemake's cost is per job (~3 ms: DAG, resources, shell command), so grouping checkpoints into
segments is what brings the plan under the goal.

The dry run is timed from outside, in a fresh directory with a copy of workflow/, resources/
and config/ as the workflow tests use: wall time (time.perf_counter) and peak memory of the
snakemake process (its rusage from wait4). It includes Snakemake's start, the parse and config
validation, the DAG build and the job listing; `phases` splits the wall time at the lines Snakemake
prints when it starts the DAG and when it has built it (its job stats). A real run waits for the
start and the DAG build before its first job; it does the listing's per-job work as it submits jobs.
With --profile it runs the dry run once more under cProfile and writes where the time goes.
"""

import argparse
import datetime
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from device import cpu_name, write_result  # bench/device.py, beside this script

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent  # snakemake and lmforecast of this environment
TASKS = ["fact_qa", "arith_mc", "var_track", "sentiment"]
TARGET_RUNS, TARGET_CHECKPOINTS, CHECKPOINTS_PER_SEGMENT = 1000, 20, 4
REFERENCE_S = 60.0  # goal: planning 1000 runs x 20 checkpoints x 10 tasks takes at most a minute


def sweep_config(runs: int, checkpoints: int, per_segment: int) -> dict:
    """The default config with `runs` runs of `checkpoints` checkpoints, every task evaluated and fine-tuned."""
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    config["training"]["checkpoints"] = checkpoints
    config["training"]["checkpoints_per_segment"] = per_segment
    sizes, mixtures = list(config["sizes"]), list(config["mixtures"])
    config["runs"] = [
        {
            "name": f"r{i:05d}",
            "size": sizes[i % len(sizes)],
            "tokens": 200_000 + 1024 * (i % 50),
            "mixture": mixtures[i % len(mixtures)],
            "objective": "clm",
            "lr": 0.003,
            "seed": i,
        }
        for i in range(runs)
    ]
    config["evaluation"]["tasks"] = TASKS
    config["sft"]["tasks"] = TASKS
    return config


def breakdown(stats_file: Path) -> dict:
    """Where the dry run spends its time (cProfile, cumulative): Snakemake's DAG build, its
    scheduling pass that lists every job (log_info per job), and the rest (start, parse)."""
    import pstats

    stats = pstats.Stats(str(stats_file)).stats  # (file, line, name) -> (cc, nc, tt, ct, callers)
    total = max(ct for (_, _, _, ct, _) in stats.values())

    def cumulative(path_end: str, name: str) -> float:
        return sum(v[3] for (f, _, n), v in stats.items() if f.endswith(path_end) and n == name)

    parts = {
        "dag_build": cumulative("snakemake/workflow.py", "_build_dag"),
        "job_listing": cumulative("snakemake/scheduling/job_scheduler.py", "schedule"),
    }
    parts["start_and_parse"] = total - sum(parts.values())
    share = {k: round(v / total, 2) for k, v in parts.items()}
    return {
        "under_cprofile_s": round(total, 1),
        "share": share,
        "bottleneck": max(share, key=share.get),
        "top_tottime": [
            f"{f.split('site-packages/')[-1]}:{n} {v[2]:.1f}s"
            for (f, _, n), v in sorted(stats.items(), key=lambda kv: -kv[1][2])[:8]
        ],
    }


def dry_run(config: dict, quiet: list, profile: bool) -> dict:
    """`snakemake -n` on `config` in a fresh copy of the workflow: wall time, its phases, CPU, peak memory, jobs."""
    with tempfile.TemporaryDirectory(prefix="lmforecast-dag-") as tmp:
        work = Path(tmp)
        for name in ("workflow", "resources", "config"):
            shutil.copytree(ROOT / name, work / name)
        (work / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        cmd = [str(BIN / "snakemake"), "-n", *quiet, "--cores", "1", "--configfile", "config.yaml"]
        env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"}

        phases, lines = {}, []
        t0 = time.perf_counter()
        # unbuffered, so that each line's arrival time is when Snakemake wrote it
        proc = subprocess.Popen(
            cmd, cwd=work, env={**env, "PYTHONUNBUFFERED": "1"}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        for line in proc.stdout:
            lines.append(line)
            for mark in ("Building DAG of jobs", "Job stats:"):  # the first of each: DAG build starts, ends
                if line.startswith(mark) and mark not in phases:
                    phases[mark] = time.perf_counter() - t0
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own CPU time and peak memory
        wall = time.perf_counter() - t0
        out = "".join(lines)
        if os.waitstatus_to_exitcode(status) != 0:
            sys.exit(f"{' '.join(cmd)} failed:\n{out[-6000:]}")
        # the job count snakemake itself reports: the "total" row of its job stats
        counts = [line.split() for line in out.splitlines() if line.startswith("total")]
        dag_start, dag_end = phases["Building DAG of jobs"], phases["Job stats:"]
        result = {
            "wall_s": round(wall, 1),
            "phases": {
                "start_and_parse_s": round(dag_start, 1),  # interpreter, Snakefile parse, config validation
                "dag_build_s": round(dag_end - dag_start, 1),  # jobs and dependencies, what needs to run
                # the dry-run executor "runs" every job: evaluates its resources and formats its shell command
                # and file lists (a real run does the same as it submits each job); --quiet only hides the text
                "job_listing_s": round(wall - dag_end, 1),
            },
            "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
            "peak_rss_mb": round(usage.ru_maxrss / 1024),
            "jobs": int(counts[-1][1]) if counts else None,
        }
        if profile:
            stats_file = work / "dag.prof"
            prof_cmd = [sys.executable, "-m", "cProfile", "-o", str(stats_file), *cmd]
            subprocess.run(prof_cmd, cwd=work, env=env, capture_output=True, text=True, check=True)
            result["profile"] = breakdown(stats_file)
    return result


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=TARGET_RUNS)
    p.add_argument("--checkpoints", type=int, default=TARGET_CHECKPOINTS)
    p.add_argument("--checkpoints-per-segment", type=int, default=CHECKPOINTS_PER_SEGMENT)
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "dag.json")
    p.add_argument(
        "--print-jobs", action="store_true", help="without --quiet rules: print every job, to see what the printing itself costs"
    )
    p.add_argument("--profile", action="store_true", help="also run the dry runs under cProfile: where the time goes")
    args = p.parse_args()

    quiet = [] if args.print_jobs else ["--quiet", "rules"]
    load = os.getloadavg()[0]  # other work on the machine makes the wall time longer
    plans = {}
    for per_segment in dict.fromkeys((args.checkpoints_per_segment, 1)):  # once if they are the same
        config = sweep_config(args.runs, args.checkpoints, per_segment)
        methods = len(config["sft"]["methods"])  # sft jobs per run: one per method on the last checkpoint
        segments = -(-args.checkpoints // per_segment)
        plan = dry_run(config, quiet, args.profile)
        # + world, tokenizer, shards, aggregate, fit_scaling, fit_pairwise, fit_transfer, fit_relatedness, fit_selection, report, all
        plans[per_segment] = {
            "checkpoints_per_segment": per_segment,
            **plan,
            "jobs_expected": args.runs * (2 * segments + methods) + 11,
        }
    ours, single = plans[args.checkpoints_per_segment], plans[1]

    result = {
        "ours": ours["wall_s"],
        "reference": REFERENCE_S,
        "ratio": round(ours["wall_s"] / REFERENCE_S, 2),
        "unit": "s (wall, snakemake -n" + ("" if args.print_jobs else " --quiet rules") + ")",
        "reference_name": "goal: plan 1000 runs x 20 checkpoints x 10 tasks in 60 s",
        **{k: v for k, v in ours.items() if k != "wall_s"},
        "one_checkpoint_per_segment": single,
        "sweep": {
            "runs": args.runs,
            "checkpoints": args.checkpoints,
            "tasks": len(TASKS),
            "sft_methods": methods,
            "note": "10 tasks asked, 4 in the schema; tasks do not change the job count",
        },
        "snakemake": subprocess.run([str(BIN / "snakemake"), "--version"], capture_output=True, text=True).stdout.strip(),
        "device": f"cpu: {cpu_name()}, {os.cpu_count()} cores",
        "load_average_1min_before": round(load, 2),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": "python bench/dag.py " + " ".join(sys.argv[1:]),
    }
    write_result(result, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
