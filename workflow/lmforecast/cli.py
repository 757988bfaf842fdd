"""`lmforecast`: the command line the workflow's rules call, one subcommand per stage.

Settings arrive as JSON (`--spec`), the slice of the config each rule passes as params, which
a stage's command reads into its typed settings first (lmforecast/settings.py); inputs and
outputs as paths. Heavy imports happen inside each command, so that `lmforecast --help` and
the light stages start fast.
"""

import argparse
import errno
import json
import os
import sys
from pathlib import Path

# One BLAS thread per process: jobs run side by side, and on tiny problems (L-BFGS-B on a
# few dozen points) BLAS threads that spin against each other were measured 8x slower.
# Set, not defaulted: Snakemake exports a job's `threads` into these (2 for fit_scaling, whose
# 2 worker processes would then run 4 BLAS threads on 2 cores). torch's threads are set per
# command (torch.set_num_threads), so this binds only numpy's and scipy's BLAS.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

from lmforecast.measure import SFT_METHODS  # noqa: E402 (a light module: no torch)


def _log(msg):
    print(msg, flush=True)


def cmd_validate(args):
    from lmforecast.config import load, set_pretrain_mem_mb

    if args.pretrain_mem_mb is not None:  # as `--set-resources pretrain:mem_mb=N` sets it for the workflow
        set_pretrain_mem_mb(args.pretrain_mem_mb)
    load(args.config, default=args.default)  # merged onto the embedded default, as the workflow merges it
    _log(f"{args.config}: valid" + (f" (merged onto {args.default})" if args.default else ""))


def cmd_world(args):
    from lmforecast.data.world import TASKS, task_examples, write_domains
    from lmforecast.measure.tasks import write_examples
    from lmforecast.settings import World

    spec = World.from_dict(args.spec)
    out = Path(args.out)
    write_domains(spec, out / "domains")
    for task in TASKS:
        write_examples(task_examples(spec, task), out / "tasks" / f"{task}.jsonl")
    _log(f"world written to {out}")


def cmd_tokenizer(args):
    import itertools

    from lmforecast.data.sources import DataError, training_documents
    from lmforecast.data.tokenizer import import_hf, save_hf, train_tokenizer
    from lmforecast.io import atomic_dir
    from lmforecast.settings import Domain, Tokenizer

    spec = Tokenizer.from_dict(args.spec)
    try:
        if spec.path:
            tok, special = import_hf(spec.path, spec.sentinels)
        else:  # the domains' training documents (a sample: each domain's first sample_docs), in config order
            domains = {name: Domain.from_dict(d) for name, d in args.domains.items()}
            texts = itertools.chain.from_iterable(
                itertools.islice(training_documents(d, name), spec.sample_docs) for name, d in domains.items()
            )
            tok, special = train_tokenizer(texts, spec.vocab_size, spec.sentinels), None
    except (DataError, ValueError) as e:
        sys.exit(f"lmforecast tokenizer: {e}")
    with atomic_dir(args.out) as tmp:
        save_hf(tok, tmp, spec.seq_len, special)
    _log(f"tokenizer: {tok.get_vocab_size()} tokens -> {args.out}")


def cmd_tokenize(args):
    from lmforecast.data.shards import concat_stores, file_record, write_store
    from lmforecast.data.sources import DataError, expand, heldout_texts, source_files, training_documents, write_heldout
    from lmforecast.settings import Domain

    domain = Domain.from_dict(args.spec)
    try:
        heldout = heldout_texts(domain, args.domain)
        if args.chunks:  # rule tokenize_chunk's stores: their files' records (the eval files' added here)
            parts = [json.loads((Path(p) / "manifest.json").read_text()) for p in args.chunks]
            evals = [file_record(p) for p in expand(domain.eval_files or [], f"domains.{args.domain}.eval_files")]
            files = [f for p in parts for f in p["files"]] + evals
        else:
            files = [file_record(p) for p in source_files(domain, args.domain)]
        manifest = {"domain": args.domain, "source": args.spec, "files": files, "heldout_documents": len(heldout)}
        if args.chunks:  # concatenated, the held-out documents left out
            skip = 0 if domain.eval_files else len(heldout)
            info = concat_stores(args.chunks, args.out, args.tokenizer, skip, manifest, where=f"domains.{args.domain}")
        else:
            info = write_store(training_documents(domain, args.domain), args.tokenizer, args.out, args.workers, manifest=manifest)
    except DataError as e:
        sys.exit(f"lmforecast tokenize: {e}")
    write_heldout(heldout, args.heldout)
    _log(f"{args.out}: {info['tokens']} tokens ({info['dtype']}) in {info['documents']} documents; {len(heldout)} held out")


def cmd_tokenize_chunk(args):
    from lmforecast.data.shards import file_record, write_store
    from lmforecast.data.sources import DataError, chunk_documents, file_chunks
    from lmforecast.settings import Domain

    domain = Domain.from_dict(args.spec)
    try:
        files = file_chunks(domain, args.domain)[args.chunk]
        manifest = {"domain": args.domain, "chunk": args.chunk, "files": [file_record(p) for p in files]}
        info = write_store(chunk_documents(domain, args.domain, files), args.tokenizer, args.out, args.workers, manifest=manifest)
    except DataError as e:
        sys.exit(f"lmforecast tokenize-chunk: {e}")
    _log(f"{args.out}: {info['tokens']} tokens in {info['documents']} documents of {len(files)} files")


def cmd_task_data(args):
    from lmforecast.measure.tasks import (
        is_lm_eval_format,
        lm_eval_examples,
        load_dataset_examples,
        read_task_yaml,
        write_examples,
    )
    from lmforecast.settings import TaskData

    spec = TaskData.from_dict(args.spec)
    try:
        files = None if spec.files == "hub" else spec.files  # hub: the dataset the YAML names (or the local HF cache)
        if is_lm_eval_format(read_task_yaml(args.task_spec)):  # rendered by lm-eval's own task code
            examples = lm_eval_examples(args.task_spec, files)
        else:
            examples = load_dataset_examples(args.task_spec, files=files)
    except ValueError as e:
        sys.exit(f"lmforecast task-data: {e}")
    write_examples(examples, args.out)
    _log(f"{args.out}: {len(examples)} examples from {'the hub' if files is None else sorted(files.values())}")


def _shard_map(paths):
    """Domain -> token store directory (results/tokens/DOMAIN) or .npy shard."""
    return {Path(p).name.removesuffix(".npy"): p for p in paths}


def cmd_pretrain(args):
    import torch

    from lmforecast.settings import Pretrain
    from lmforecast.train.loop import SetupError, Terminated, train_segment

    torch.set_num_threads(args.threads)
    spec = Pretrain.from_dict(args.spec)
    shards = {d: p for d, p in _shard_map(args.shards).items() if d in spec.run.mixture}
    try:
        state = train_segment(
            spec,
            args.step_start,
            args.step_end,
            shards,
            args.tokenizer,
            args.init,
            args.out,
            log=_log,
            save_steps=args.save_steps,
        )
    except Terminated as e:
        _log(f"lmforecast: {e}")
        sys.exit(128 + 15)  # the shell's code for a process ended by SIGTERM
    except SetupError as e:  # explained, not a traceback: the setting to change is in the message
        sys.exit(f"lmforecast pretrain: {e}")
    if os.environ.get("RANK", "0") == "0":  # under torchrun every rank returns the state: one line, from rank 0
        _log(f"checkpoint {args.out}: step {state['step']} train_loss {state['train_loss']:.4f}")


def _load_checkpoint(path):
    """The checkpoint's LM (verified against its manifest) and its trainer state (run, step)."""
    from lmforecast.io import read_json
    from lmforecast.measure.lm import load_lm
    from lmforecast.train.loop import TRAINER_STATE

    return load_lm(path), read_json(Path(path) / TRAINER_STATE)


def _load_tasks(task_files, example_files, names=None):
    """name -> (Task, examples) of the task YAMLs given (of those named, if `names`)."""
    from lmforecast.measure.tasks import load_task, read_examples

    tasks = {}
    for spec_path in task_files:
        task = load_task(spec_path)
        if names is None or task.name in names:
            examples = next(e for e in example_files if Path(e).name == f"{task.name}.jsonl")
            tasks[task.name] = (task, read_examples(examples))
    return tasks


def cmd_evaluate(args):
    import pyarrow as pa
    import torch

    from lmforecast import tables
    from lmforecast.data.sources import heldout_documents
    from lmforecast.measure.evaluate import evaluate_checkpoint
    from lmforecast.measure.lm import load_lm
    from lmforecast.settings import Evaluation

    torch.set_num_threads(args.threads)
    cfg = Evaluation.from_dict(args.spec)
    if args.external_run and len(args.checkpoint) != len(args.external_step):
        sys.exit(
            f"lmforecast evaluate: --external-run {args.external_run!r}: {len(args.checkpoint)} --checkpoint directories "
            f"but {len(args.external_step)} --external-step steps; expected one step per directory"
        )
    external_steps = dict(zip(args.checkpoint, args.external_step)) if args.external_run else {}
    documents = heldout_documents(args.domains, cfg.domain_docs)  # results/heldout/DOMAIN.jsonl, rule tokenize's
    tasks = _load_tasks(args.task_specs, args.task_examples)  # the rule passes the evaluated tasks (resolved)
    names = ("domain_losses", "task_scores", "example_scores")
    parts = {name: [] for name in names}
    for path in args.checkpoint:  # a segment's checkpoints, in one process: one start-up, data and tasks read once
        if args.external_run:  # an HF model directory from the config's `external` list, with its own tokenizer
            try:
                lm = load_lm(path, external=True)
            except ValueError as e:
                sys.exit(f"lmforecast evaluate: external model {args.external_run!r}: {e}")
            keys = {"run": args.external_run, "step": external_steps[path]}
        else:
            lm, state = _load_checkpoint(path)
            keys = {"run": state["run"], "step": state["step"]}
        out = evaluate_checkpoint(lm.place(cfg.precision), keys, documents, tasks, cfg, log=_log)
        for name in names:
            parts[name].append(out[name])
        _log(f"evaluated {path}: {out['task_scores'].num_rows} task scores")
    for name in names:
        tables.write(pa.concat_tables(parts[name]), getattr(args, name))


def cmd_sft(args):
    import torch

    from lmforecast import tables
    from lmforecast.measure.sft import run_sft
    from lmforecast.settings import Sft

    torch.set_num_threads(args.threads)
    cfg = Sft.from_dict(args.spec)
    if args.external_run:  # an external model's checkpoint (config `external`), with its own tokenizer
        from lmforecast.measure.lm import load_lm

        lm, state = load_lm(args.checkpoint, external=True), {"run": args.external_run, "step": args.external_step[0]}
    else:
        lm, state = _load_checkpoint(args.checkpoint)
    tasks = _load_tasks(args.task_specs, args.task_examples)  # the rule passes sft.tasks (resolved)
    keys = {"run": state["run"], "step": state["step"]}
    from lmforecast.measure.sft import SftDataError, read_instruction_rows

    try:  # instruction data (sft.data): checked and rendered before any training
        instructions = {d.name: read_instruction_rows(d.path) for d in cfg.data}
        table, examples = run_sft(lm.place(), keys, tasks, cfg, args.method, log=_log, instructions=instructions)
    except SftDataError as e:
        sys.exit(f"lmforecast sft: {e}")
    tables.write(examples, args.example_scores)
    tables.write(table, args.out)
    import polars as pl

    acc = pl.from_arrow(table).filter(pl.col("metric") == "acc").select("task", "sft_data", "value")
    _log(f"{args.method} SFT of {args.checkpoint}, accuracy on the eval splits:\n{acc}")


def cmd_import(args):
    from lmforecast.measure.imports import ImportDataError, import_tables, write_tables

    try:
        built = import_tables(args.spec)  # everything checked before the first table is written
    except ImportDataError as e:
        sys.exit(f"lmforecast import: {e}")
    write_tables(built, args.out_dir)
    _log("imported: " + ", ".join(f"{name} {t.num_rows} rows" for name, t in built.items()) + f" -> {args.out_dir}")


def _read_named(directory, *names):
    """The named tables of a directory, each checked against its schema (a wrong file is named)."""
    import polars as pl

    from lmforecast import tables

    out = {}
    for name in names:
        path = Path(directory) / f"{name}.parquet"
        if not path.exists():
            raise FileNotFoundError(f"{path}: table {name} not found (expected results of rule aggregate)")
        out[name] = pl.from_arrow(tables.read(name, path))
    return out


def cmd_fit(args):
    """One registered fit (lmforecast/fits/registry.py): its tables in, its outputs and figures out."""
    from lmforecast.fits.registry import FitInputs, registry

    fit = registry()[args.name]
    inputs = FitInputs(
        tables=_read_named(args.tables, *fit.tables),
        settings=fit.settings.from_dict(args.spec),
        spec=args.spec,
        fits_dir=Path(args.fits),
        report_dir=Path(args.report_dir),
        threads=args.threads,
    )
    _log("\n".join(fit.run(inputs)))


def cmd_report(args):
    from lmforecast.report import TABLES
    from lmforecast.report.page import build_report

    tables = _read_named(args.tables, *TABLES)
    sections = build_report(tables, args.fits, args.spec, args.out, **({"captions": args.captions} if args.captions else {}))
    _log(f"report written to {args.out}/index.html: sections {', '.join(sections)}")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="lmforecast", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name, func, *specs, spec=True):
        p = sub.add_parser(name)
        p.set_defaults(func=func)
        if spec:
            p.add_argument("--spec", type=json.loads, required=True, help="this stage's config slice, as JSON")
        for flags, kw in specs:
            p.add_argument(*flags, **kw)
        return p

    many = {"nargs": "+", "required": True}
    one = {"required": True}
    threads = (("--threads",), {"type": int, "default": 1})
    add(
        "validate",
        cmd_validate,
        (("config",), {}),
        (
            ("--default",),
            {
                "default": "config/config.yaml",
                "type": lambda v: v or None,
                "help": "the file the workflow merges CONFIG onto (its configfile, default config/config.yaml); empty: none",
            },
        ),
        (
            ("--pretrain-mem-mb",),
            {
                "type": int,
                "help": "the pretrain job's memory, as --set-resources pretrain:mem_mb gives it (default: the profile's)",
            },
        ),
        spec=False,
    )
    add("world", cmd_world, (("--out",), one))
    add(
        "tokenizer",
        cmd_tokenizer,
        (("--domains",), {"type": json.loads, "required": True, "help": "config `domains`, resolved"}),
        (("--out",), one),
    )
    add("task-data", cmd_task_data, (("--task-spec",), one), (("--out",), one))
    add(
        "tokenize",
        cmd_tokenize,
        (("--domain",), one),
        (("--tokenizer",), one),
        (("--out",), one),
        (("--heldout",), one),
        (("--workers",), {"type": int, "default": 1, "help": "tokenizing processes"}),
        (
            ("--chunks",),
            {"nargs": "*", "default": [], "help": "rule tokenize_chunk's stores, concatenated instead of tokenizing"},
        ),
    )
    add(
        "tokenize-chunk",
        cmd_tokenize_chunk,
        (("--domain",), one),
        (("--chunk",), {"type": int, "required": True, "help": "which chunk of chunk_files files, from 0"}),
        (("--tokenizer",), one),
        (("--out",), one),
        (("--workers",), {"type": int, "default": 1, "help": "tokenizing processes"}),
    )
    add(
        "pretrain",
        cmd_pretrain,
        (("--shards",), many),
        (("--tokenizer",), one),
        (("--init",), {"default": None}),
        (("--step-start",), {"type": int, "required": True}),
        (("--step-end",), {"type": int, "required": True}),
        (
            ("--save-steps",),
            {"type": int, "nargs": "*", "default": [], "help": "the segment's earlier checkpoints, written to OUT/step{k}"},
        ),
        (("--out",), one),
        threads,
    )
    add(
        "evaluate",
        cmd_evaluate,
        (("--checkpoint",), many),
        (("--domains",), many),
        (("--task-specs",), many),
        (("--task-examples",), many),
        (("--domain-losses",), one),
        (("--task-scores",), one),
        (("--example-scores",), one),
        threads,
        (("--external-run",), {"default": None, "help": "--checkpoint is an external HF model directory; its run name"}),
        (
            ("--external-step",),
            {"type": int, "nargs": "+", "default": [0], "help": "the steps its rows carry, one per --checkpoint"},
        ),
    )
    add(
        "sft",
        cmd_sft,
        (("--checkpoint",), one),
        (("--method",), {"required": True, "choices": SFT_METHODS}),
        (("--task-specs",), many),
        (("--task-examples",), many),
        (("--out",), one),
        (("--example-scores",), one),
        threads,
        (("--external-run",), {"default": None, "help": "--checkpoint is an external HF model directory; its run name"}),
        (("--external-step",), {"type": int, "nargs": 1, "default": [0], "help": "the step its rows carry"}),
    )
    add("import", cmd_import, (("--out-dir",), one))
    from lmforecast.fits.registry import registry  # light: the fits' modules import their libraries when run

    add(
        "fit",
        cmd_fit,
        (("name",), {"choices": [fit.name for fit in registry()], "help": "a registered fit (FIT in lmforecast/fits/)"}),
        (("--tables",), one),
        (("--fits",), one),
        (("--report-dir",), one),
        threads,
    )
    add(
        "report",
        cmd_report,
        (("--tables",), one),
        (("--fits",), one),
        (("--out",), one),
        (("--captions",), {"default": None, "help": "directory of the figures' .rst captions (default: workflow/report)"}),
    )

    args = parser.parse_args(argv)
    from lmforecast.config import ConfigError
    from lmforecast.io import DiskFullError, disk_full_message
    from lmforecast.tables import TableError
    from lmforecast.train.checkpoint import CheckpointError

    try:
        args.func(args)
    except (ConfigError, CheckpointError, TableError) as e:
        sys.exit(f"lmforecast: {e}")
    except DiskFullError as e:
        sys.exit(f"lmforecast: {e.strerror}")
    except OSError as e:
        if e.errno != errno.ENOSPC:
            raise
        sys.exit(f"lmforecast: {disk_full_message(e)}")


if __name__ == "__main__":
    main()
