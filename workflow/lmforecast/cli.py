"""`lmforecast`: the command line the workflow's rules call, one subcommand per stage.

Settings arrive as JSON (`--spec`), the slice of the config each rule passes as params;
inputs and outputs as paths. Heavy imports happen inside each command, so that
`lmforecast --help` and the light stages start fast.
"""

import argparse
import json
import sys
from pathlib import Path


def _log(msg):
    print(msg, flush=True)


def cmd_validate(args):
    from lmforecast.config import load

    load(args.config)
    _log(f"{args.config}: valid")


def cmd_world(args):
    from lmforecast.io import atomic_path
    from lmforecast.tasks import write_examples
    from lmforecast.world import DOMAINS, TASKS, WorldSpec, domain_documents, task_examples

    spec = WorldSpec(**args.spec)
    out = Path(args.out)
    for domain in DOMAINS:
        with atomic_path(out / "domains" / f"{domain}.jsonl") as tmp, open(tmp, "w") as f:
            for split in ("train", "valid"):
                for doc in domain_documents(spec, domain, split):
                    f.write(json.dumps({"split": split, "text": doc}) + "\n")
    for task in TASKS:
        write_examples(task_examples(spec, task), out / "tasks" / f"{task}.jsonl")
    _log(f"world written to {out}")


def _documents(path, split, limit=None):
    with open(path) as f:
        docs = [d["text"] for d in map(json.loads, f) if d["split"] == split]
    return docs[:limit]


def cmd_tokenizer(args):
    from lmforecast.io import atomic_dir
    from lmforecast.tokenizer import save_hf, train_tokenizer

    texts = [doc for path in args.domains for doc in _documents(path, "train")]
    tok = train_tokenizer(texts, args.spec["vocab_size"], args.spec["sentinels"])
    with atomic_dir(args.out) as tmp:
        save_hf(tok, tmp, args.spec["seq_len"])
    _log(f"tokenizer: {tok.get_vocab_size()} tokens -> {args.out}")


def cmd_shards(args):
    import numpy as np

    from lmforecast import tokenizer as tokenizer_lib
    from lmforecast.data import encode_documents
    from lmforecast.io import atomic_path

    tok = tokenizer_lib.load(args.tokenizer)
    for src, dst in zip(args.domains, args.out):
        ids = encode_documents(tok, _documents(src, "train"), tokenizer_lib.eos_id(tok))
        with atomic_path(dst) as tmp, open(tmp, "wb") as f:
            np.save(f, ids)
        _log(f"{dst}: {len(ids)} tokens")


def _shard_map(paths):
    return {Path(p).name.removesuffix(".npy"): p for p in paths}


def cmd_pretrain(args):
    import torch

    from lmforecast.train import Terminated, train_segment

    torch.set_num_threads(args.threads)
    run, training = args.spec["run"], args.spec["training"]
    shards = {d: p for d, p in _shard_map(args.shards).items() if d in run["mixture"]}
    try:
        state = train_segment(run, training, args.step_start, args.step_end, shards, args.tokenizer, args.init, args.out, log=_log)
    except Terminated as e:
        _log(f"lmforecast: {e}")
        sys.exit(128 + 15)  # the shell's code for a process ended by SIGTERM
    _log(f"checkpoint {args.out}: step {state['step']} train_loss {state['train_loss']:.4f}")


def _load_checkpoint(path):
    from lmforecast import tokenizer as tokenizer_lib
    from lmforecast.checkpoint import verify
    from lmforecast.io import read_json
    from lmforecast.model import load_model
    from lmforecast.train import TRAINER_STATE

    verify(path)  # a truncated or corrupted checkpoint is named, never used
    tok = tokenizer_lib.load(path)
    return load_model(path), tok, tokenizer_lib.eos_id(tok), read_json(Path(path) / TRAINER_STATE)


def _load_tasks(task_files, example_files, names):
    from lmforecast.tasks import load_task, read_examples

    tasks = {}
    for spec_path in task_files:
        task = load_task(spec_path)
        if task.name in names:
            examples = next(e for e in example_files if Path(e).name == f"{task.name}.jsonl")
            tasks[task.name] = (task, read_examples(examples))
    return tasks


def cmd_evaluate(args):
    import torch

    from lmforecast import tables
    from lmforecast.evaluate import evaluate_checkpoint

    torch.set_num_threads(args.threads)
    cfg = args.spec
    model, tok, eos, state = _load_checkpoint(args.checkpoint)
    documents = {Path(p).name.removesuffix(".jsonl"): _documents(p, "valid", cfg["domain_docs"]) for p in args.domains}
    tasks = _load_tasks(args.task_specs, args.task_examples, cfg["tasks"])
    keys = {"run": state["run"], "step": state["step"]}
    out = evaluate_checkpoint(model, tok, eos, keys, documents, tasks, cfg, model.cfg.seq_len)
    for name in ("domain_losses", "task_scores", "example_scores"):
        tables.write(out[name], getattr(args, name))
    _log(f"evaluated {args.checkpoint}: {out['task_scores'].num_rows} task scores")


def cmd_sft(args):
    import torch

    from lmforecast import tables
    from lmforecast.sft import run_sft

    torch.set_num_threads(args.threads)
    model, tok, eos, state = _load_checkpoint(args.checkpoint)
    tasks = _load_tasks(args.task_specs, args.task_examples, args.spec["tasks"])
    keys = {"run": state["run"], "step": state["step"]}
    table = run_sft(model, tok, eos, keys, tasks, args.spec, args.method, model.cfg.seq_len, log=_log)
    tables.write(table, args.out)
    import polars as pl

    acc = pl.from_arrow(table).filter(pl.col("metric") == "acc").select("task", "sft_data", "value")
    _log(f"{args.method} SFT of {args.checkpoint}, accuracy on the eval splits:\n{acc}")


def _read_tables(directory):
    import polars as pl

    return {p.stem: pl.read_parquet(p) for p in Path(directory).glob("*.parquet")}


def cmd_fit_flp(args):
    from lmforecast import io
    from lmforecast.flp import fit_flp
    from lmforecast.tables import write

    t = _read_tables(args.tables)
    params, preds, reports = fit_flp(t["runs"], t["checkpoints"], t["domain_losses"], t["task_scores"], args.spec)
    write(params.to_arrow(), args.params)
    write(preds.to_arrow(), args.predictions)
    io.write_text("\n\n".join(reports) + "\n", args.report)
    io.write_json({"config": args.spec, "predictions": preds.to_dicts(), "params": params.to_dicts()}, args.json)
    _log("\n\n".join(reports))


def cmd_report(args):
    import polars as pl

    from lmforecast.report import build_report

    build_report(_read_tables(args.tables), pl.read_parquet(args.params), pl.read_parquet(args.predictions), args.spec, args.out)
    _log(f"report written to {args.out}")


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
    add("validate", cmd_validate, (("config",), {}), spec=False)
    add("world", cmd_world, (("--out",), one))
    add("tokenizer", cmd_tokenizer, (("--domains",), many), (("--out",), one))
    add("shards", cmd_shards, (("--domains",), many), (("--tokenizer",), one), (("--out",), many), spec=False)
    add("pretrain", cmd_pretrain, (("--shards",), many), (("--tokenizer",), one), (("--init",), {"default": None}),
        (("--step-start",), {"type": int, "required": True}), (("--step-end",), {"type": int, "required": True}),
        (("--out",), one), threads)
    add("evaluate", cmd_evaluate, (("--checkpoint",), one), (("--domains",), many), (("--task-specs",), many),
        (("--task-examples",), many), (("--domain-losses",), one), (("--task-scores",), one), (("--example-scores",), one), threads)
    add("sft", cmd_sft, (("--checkpoint",), one), (("--method",), one), (("--task-specs",), many), (("--task-examples",), many),
        (("--out",), one), threads)
    add("fit-flp", cmd_fit_flp, (("--tables",), one), (("--params",), one), (("--predictions",), one),
        (("--report",), one), (("--json",), one))
    add("report", cmd_report, (("--tables",), one), (("--params",), one), (("--predictions",), one), (("--out",), one))

    args = parser.parse_args(argv)
    from lmforecast.checkpoint import CheckpointError
    from lmforecast.config import ConfigError

    try:
        args.func(args)
    except (ConfigError, CheckpointError) as e:
        sys.exit(f"lmforecast: {e}")


if __name__ == "__main__":
    main()
