"""Multiple-choice scoring speed: lmforecast's scorer vs lm-evaluation-harness (HF backend).

Same model, same questions, same machine, one process, one thread:

    make install && .venv/bin/python bench/evaluate.py       # ~4 minutes; writes bench/results/evaluate.json
    .venv/bin/python bench/evaluate.py --checkpoint results/checkpoints/<run>/step<step>  # a trained checkpoint

Needs lm-eval (envs/requirements.txt). Without --checkpoint the model is a randomly
initialised Llama of the default config's largest size (`l`) with a BPE tokenizer trained
on the default world; speed does not depend on the weights, and near-uniform predictions
make the accuracy comparison a strict one (near-ties are decided by rounding).

The task is fact_qa (4 choices, 70% of them several tokens long) on the grid the default
config evaluates: both prompts x {0, 2} demonstrations, one lm-eval task per (prompt,
shots). lm-eval runs them once end to end (`simple_evaluate`, log_samples) for its
contexts (its own demonstrations), per-example log-likelihoods and acc / acc_norm; then
the timed part alternates, `--reps` times, lmforecast's `score_requests` on Requests with
exactly lm-eval's contexts and lm-eval's `HFLM.loglikelihood` on exactly its own requests
(all tasks in one call on both sides, as both evaluators do; tokenization included,
lm-eval's dataset and task set-up excluded), at each `--lmeval-batch-sizes`. The ratio
is our median examples/s over the best lm-eval batch size's median.

Contexts longer than the model's window (e.g. 3 demonstrations at seq_len 128) are cut on
the left per choice, differently for choices of different token lengths, so they cannot
share a context; there the gain shrinks to what sharing among equally long choices gives.
"""

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything is local; never reach for the hub
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np
import torch
import yaml
from device import cpu_name, write_result  # noqa: E402 (bench/device.py, beside this script)

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow"))

from lmforecast.data import tokenizer as tokenizer_lib  # noqa: E402
from lmforecast.data.world import DOMAINS, domain_documents, task_examples  # noqa: E402
from lmforecast.measure.evaluate import score_requests  # noqa: E402
from lmforecast.measure.lm import LlamaLM  # noqa: E402
from lmforecast.measure.tasks import Request, load_task  # noqa: E402
from lmforecast.settings import World  # noqa: E402
from lmforecast.train.model import Llama, ModelConfig, load_model, save_model  # noqa: E402


def build_model(directory, config_path):
    """A random-init model of the config's largest size, its tokenizer and the world, saved as a checkpoint."""
    cfg = yaml.safe_load(Path(config_path).read_text())
    world = World.from_dict(cfg["world"])
    texts = [d for dom in DOMAINS for d in domain_documents(world, dom, "train")]
    tok = tokenizer_lib.train_tokenizer(texts, cfg["tokenizer"]["vocab_size"], cfg["tokenizer"]["sentinels"])
    size = cfg["sizes"]["l"]
    torch.manual_seed(0)
    model = Llama(
        ModelConfig(
            vocab_size=tok.get_vocab_size(), seq_len=cfg["training"]["seq_len"], eos_token_id=tokenizer_lib.eos_id(tok), **size
        )
    )
    save_model(model, directory)
    tokenizer_lib.save_hf(tok, directory, model_max_length=cfg["training"]["seq_len"])
    return world, "random-init Llama, size l of config/config.yaml " + json.dumps(size)


def write_lmeval_task(task, examples, prompt, shots, directory):
    """The task as lm-eval YAML over local JSONL files (one row per example: its fields, choices, gold)."""
    for split in (task.fewshot_split, task.eval_split):
        with open(directory / f"{split}.jsonl", "w") as f:
            for x in examples:
                if x["split"] == split:
                    f.write(json.dumps({"id": x["id"], **x["fields"], "choices": x["choices"], "gold": x["gold"]}) + "\n")
    name = f"bench_{task.name}_{prompt}_{shots}shot"
    spec = {
        "task": name,
        "dataset_path": "json",
        "dataset_kwargs": {
            "data_files": {s: str(directory / f"{s}.jsonl") for s in (task.fewshot_split, task.eval_split)},
            "cache_dir": str(directory / "hf_cache"),
        },
        "test_split": task.eval_split,
        "fewshot_split": task.fewshot_split,
        "num_fewshot": shots,
        "output_type": "multiple_choice",
        "doc_to_text": re.sub(r"\{(\w+)\}", r"{{\1}}", task.prompts[prompt]),  # str.format -> Jinja
        "doc_to_choice": "choices",
        "doc_to_target": "gold",
        "target_delimiter": task.target_delimiter,
        "fewshot_delimiter": task.fewshot_delimiter,
        "metric_list": [
            {"metric": "acc", "aggregation": "mean", "higher_is_better": True},
            {"metric": "acc_norm", "aggregation": "mean", "higher_is_better": True},
        ],
    }
    (directory / f"{name}.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return name


def lmeval_metrics(lls, choices, gold):
    """acc and acc_norm as lm-eval's ConfigurableTask.process_results computes them."""
    lls = np.asarray(lls)
    chars = np.array([float(len(c)) for c in choices])
    return float(np.argmax(lls) == gold), float(np.argmax(lls / chars) == gold)


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", help="a workflow checkpoint directory (default: a random-init model, see above)")
    ap.add_argument("--config", default=str(REPO / "config/config.yaml"))
    ap.add_argument("--task", default="fact_qa")
    ap.add_argument("--prompts", nargs="+", default=["statement", "question"])
    ap.add_argument("--shots", type=int, nargs="+", default=[0, 2])
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--lmeval-batch-sizes", type=int, nargs="+", default=[1, 64, 256])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="both sides on this device (bench/gpu.sh: cuda)")
    ap.add_argument("--out", default=str(REPO / "bench/results/evaluate.json"))
    args = ap.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda: torch sees no CUDA device")
    torch.set_num_threads(args.threads)

    import lm_eval
    import transformers
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    tmp = Path(tempfile.mkdtemp(prefix="bench_evaluate_"))
    if args.checkpoint:
        model_dir = Path(args.checkpoint)
        world = World.from_dict(yaml.safe_load(Path(args.config).read_text())["world"])
        model_desc = f"checkpoint {args.checkpoint}"
    else:
        model_dir = tmp / "model"
        model_dir.mkdir()
        world, model_desc = build_model(model_dir, args.config)
    task = load_task(REPO / f"resources/tasks/{args.task}.yaml")
    examples = task_examples(world, args.task)
    names = {write_lmeval_task(task, examples, p, k, tmp): (p, k) for p in args.prompts for k in args.shots}

    ours_lm = LlamaLM(
        load_model(model_dir), tokenizer_lib.load(model_dir)
    )  # not LlamaLM.load: a random-init model has no manifest
    if args.device == "cuda":
        ours_lm.place()  # as the evaluate job places it: on the GPU, float32

    # lm-eval prepends BOS to the context only if the tokenizer adds it; ours is EOS (= BOS), as our scorer does.
    lms = {
        bs: HFLM(pretrained=str(model_dir), device=args.device, dtype="float32", batch_size=bs, add_bos_token=True)
        for bs in args.lmeval_batch_sizes
    }
    reference_lm = lms[args.lmeval_batch_sizes[-1]]
    start = time.perf_counter()
    res = lm_eval.simple_evaluate(
        model=reference_lm,
        tasks=list(names),
        log_samples=True,
        bootstrap_iters=0,
        task_manager=TaskManager(include_path=str(tmp), include_defaults=False),
    )
    lmeval_end_to_end_s = time.perf_counter() - start

    requests, instances, samples = [], [], []
    for name, (prompt, shots) in names.items():
        for s in sorted(res["samples"][name], key=lambda s: s["doc_id"]):
            doc = s["doc"]
            req = Request(
                task=task.name,
                prompt=prompt,
                shots=shots,
                example=doc["id"],
                context=s["arguments"][0][0],
                choices=tuple(doc["choices"]),
                gold=doc["gold"],
                target_delimiter=task.target_delimiter,
            )
            assert [tuple(a) for a in s["arguments"]] == [(req.context, c) for c in req.continuations]
            requests.append(req)
            samples.append(s)
            instances += [
                Instance(request_type="loglikelihood", doc=doc, arguments=tuple(a), idx=i) for i, a in enumerate(s["arguments"])
            ]
    n = len(requests)

    # Warm-up, then alternate the timed runs so that machine noise hits both alike.
    score_requests(ours_lm, requests[:8])
    times = {"ours": [], **{bs: [] for bs in lms}}
    for _ in range(args.reps):
        t, ours = timed(lambda: score_requests(ours_lm, requests))
        times["ours"].append(t)
        for bs, lm in lms.items():
            t, ref = timed(lambda: lm.loglikelihood(instances, disable_tqdm=True))
            times[bs].append(t)

    # Agreement: lm-eval's own per-example acc/acc_norm (from simple_evaluate) vs ours, float32 on both sides.
    ref_lls, k = [], 0
    for req in requests:
        ref_lls.append([ll for ll, _ in ref[k : k + len(req.choices)]])
        k += len(req.choices)
    ours_acc = [(m["acc"], m["acc_norm"]) for m in ours]
    lmeval_acc = [(s["acc"], s["acc_norm"]) for s in samples]
    timed_ref_acc = [lmeval_metrics(lls, req.choices, req.gold) for lls, req in zip(ref_lls, requests)]
    gold_ll_diff = max(abs(m["logprob_correct"] - lls[req.gold]) for m, lls, req in zip(ours, ref_lls, requests))
    ours_lls = ours_lm.loglikelihood([(r.context, r.continuations) for r in requests])
    ll_diff = max(abs(a[0] - b) for mine, theirs in zip(ours_lls, ref_lls) for a, b in zip(mine, theirs))

    med = {k: float(np.median(v)) for k, v in times.items()}
    ours_eps = n / med["ours"]
    ref_eps = {bs: n / med[bs] for bs in lms}
    best_bs = max(ref_eps, key=ref_eps.get)
    result = {
        "benchmark": "multiple-choice scoring, examples/s (one example = one question, all its choices)",
        "ours": round(ours_eps, 2),
        "reference": round(ref_eps[best_bs], 2),
        "ratio": round(ours_eps / ref_eps[best_bs], 2),
        "unit": "examples/s",
        "reference_name": f"lm-eval {lm_eval.__version__} HFLM.loglikelihood (transformers LlamaForCausalLM), batch_size={best_bs}",
        "reference_by_batch_size": {str(bs): round(v, 2) for bs, v in ref_eps.items()},
        "median_seconds": {str(k): round(v, 4) for k, v in med.items()},
        "all_seconds": {str(k): [round(x, 4) for x in v] for k, v in times.items()},
        "reps": args.reps,
        "lmeval_simple_evaluate_seconds": round(lmeval_end_to_end_s, 2),
        "accuracy_identical": ours_acc == lmeval_acc,
        "accuracy_identical_to_timed_reference": ours_acc == timed_ref_acc,
        "acc": {"ours": float(np.mean([a for a, _ in ours_acc])), "lm-eval": float(np.mean([a for a, _ in lmeval_acc]))},
        "acc_norm": {"ours": float(np.mean([b for _, b in ours_acc])), "lm-eval": float(np.mean([b for _, b in lmeval_acc]))},
        "max_abs_diff_loglikelihood": ll_diff,
        "max_abs_diff_gold_loglikelihood": gold_ll_diff,
        "examples": n,
        "choices": int(sum(len(r.choices) for r in requests)),
        "task": f"{args.task}: prompts {args.prompts} x shots {args.shots} (lm-eval's demonstrations), all eval examples",
        "model": model_desc,
        "dtype": "float32",
        "device": f"cuda: {torch.cuda.get_device_name()}"
        if args.device == "cuda"
        else f"cpu: {cpu_name()}, {args.threads} thread{'s' if args.threads > 1 else ''}",
        "versions": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "lm_eval": lm_eval.__version__,
            "python": platform.python_version(),
        },
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": "python bench/evaluate.py " + " ".join(sys.argv[1:]),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    write_result(result, args.out)
    shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
