"""Supervised fine-tuning of a checkpoint, then scoring with the evaluation scorer.

SFT trains on a task's `sft` split in the zero-shot format of one prompt template, with
the loss on the answer tokens only (the prompt is context): on one task (single-task)
or on the union of the SFT tasks' splits (multi-task, as in Zeng et al.'s multi-task
setting). Methods:
- full: every parameter trains;
- lora: rank-r adapters on every projection (peft), merged into the weights afterwards,
  so the result is again a plain LlamaForCausalLM checkpoint;
- last_layers: only the top k blocks, the final norm and the (tied) output head train.
The fine-tuned model is scored on each task's `eval` split exactly as the evaluate
stage scores a checkpoint (same scorer, zero-shot, same prompt).

Instruction data (config sft.data): local JSONL or Parquet files in trl's dataset formats, either
prompt/completion (strings) or conversational (`messages`: [{role, content}], the last one the
assistant's), rendered with the tokenizer's chat template; the loss is on the completion (the
last assistant turn) only. Each source is one SFT run of its own (sft_data "data:NAME", scored
on every task) and a part of the multi-task mixture, weighted by sft.weights.
Why not trl's SFTTrainer: it is a transformers Trainer over transformers models, with its own
data pipeline, shuffling and per-step overhead; these runs are 40 steps of our own Llama module
(or a transformers one) with LoRA or frozen blocks, seeded draw by draw so that the tables are
the same on every run. What it would add here (completion-only loss, chat templates) is the
tokenizer's apply_chat_template and a label mask, done below as trl does them; packing is not
used (examples are short, one per row).

Training runs on the model's device (the GPU when the job has one: the CLI places it), under
bf16 autocast with sft.precision bf16 (float32 weights and AdamW state); its scoring then
uses bf16 weights, as evaluation.precision bf16 does.
"""

import copy
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from lmforecast import tables
from lmforecast.measure import SFT_METHODS
from lmforecast.measure.evaluate import score_requests
from lmforecast.measure.scoring import encode_pair
from lmforecast.measure.tasks import answer, build_requests, render
from lmforecast.settings import Sft

LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
SCORE_METRICS = ("acc", "acc_norm", "correct_prob", "norm_correct_prob", "logprob_correct")


def sft_batches(lm, task, examples, prompt):
    """(input ids, loss mask) per SFT example; the mask covers the answer tokens."""
    out = []
    for x in examples:
        if x["split"] != task.fewshot_split:
            continue
        # the zero-shot context as it is scored: the task's description (lm-eval's; none for ours), then the prompt
        context = task.description.format(**x["fields"]) + render(task, prompt, x)
        full, start = encode_pair(lm, context, answer(task, x))
        cut = max(0, len(full) - (lm.max_len + 1))  # drop prompt tokens on the left, as the scorer does
        seq, start = full[cut:], max(1, start - cut)
        mask = [0] * start + [1] * (len(seq) - start)
        out.append((seq, mask))
    return out


INSTRUCTION_FORMATS = {"prompt/completion": ("prompt", "completion"), "conversational": ("messages",)}


class SftDataError(ValueError):
    """Instruction data that cannot be used; the message names the file and row."""


def read_instruction_rows(path) -> list[dict]:
    """The rows of a JSONL or Parquet file of instruction data (datasets' json / parquet builders), checked."""
    import datasets

    from lmforecast.measure.tasks import DATA_FORMATS

    fmt = DATA_FORMATS.get(Path(path).suffix)
    if fmt is None:
        raise SftDataError(f"{path}: expected a file ending in one of {sorted(DATA_FORMATS)}")
    rows = list(datasets.load_dataset(fmt, data_files={"train": str(path)}, split="train"))
    for i, row in enumerate(rows):
        instruction_format(row, f"{path}: row {i}")
    return rows


def instruction_format(row: dict, where: str) -> str:
    """prompt/completion or conversational; an error naming `where` and the fields expected otherwise."""
    if row.get("messages") is not None:
        messages = row["messages"]
        if not messages or not all(isinstance(m, dict) and {"role", "content"} <= set(m) for m in messages):
            raise SftDataError(f"{where}: messages must be a list of {{role, content}}")
        if messages[-1]["role"] != "assistant":
            raise SftDataError(
                f"{where}: the last message's role is {messages[-1]['role']!r}; expected 'assistant' (the completion)"
            )
        return "conversational"
    if row.get("prompt") is not None and row.get("completion") is not None:
        return "prompt/completion"
    raise SftDataError(
        f"{where}: has fields {sorted(k for k, v in row.items() if v is not None)}; expected prompt and completion, "
        "or messages (a chat: [{role, content}, ...], the last one the assistant's)"
    )


def chat_template_of(lm):
    """The tokenizer's chat template, or None (our BPE tokenizer has none)."""
    return getattr(getattr(lm, "tokenizer", None), "chat_template", None)


def render_instruction(lm, row: dict) -> tuple[str, str]:
    """(prompt text, completion text) of a row; a chat through the tokenizer's chat template, as trl renders it:
    the prompt is the conversation before the last assistant turn with the generation prompt, the completion
    the rest of the whole conversation's text."""
    messages = row.get("messages")
    if messages is None:
        prompt, completion = row["prompt"], row["completion"]
        if isinstance(prompt, str):
            return prompt, completion
        messages = list(prompt) + list(completion)  # trl's conversational prompt-completion
    if not chat_template_of(lm):
        raise SftDataError("chat messages need a tokenizer with a chat template; this model's tokenizer has none")
    tok = lm.tokenizer
    prompt = tok.apply_chat_template(messages[:-1], tokenize=False, add_generation_prompt=True)
    whole = tok.apply_chat_template(messages, tokenize=False)
    if not whole.startswith(prompt):
        raise SftDataError("the chat template renders the conversation so that the prompt is not its beginning")
    return prompt, whole[len(prompt) :]


def instruction_batches(lm, rows) -> list:
    """(input ids, loss mask) per row, as sft_batches: the mask covers the completion's tokens only."""
    out = []
    for row in rows:
        full, start = encode_pair(lm, *render_instruction(lm, row))
        cut = max(0, len(full) - (lm.max_len + 1))  # drop prompt tokens on the left, as the scorer does
        seq, start = full[cut:], max(1, start - cut)
        out.append((seq, [0] * start + [1] * (len(seq) - start)))
    return out


def mixture_probabilities(sources: dict, weights: dict):
    """Per example of the multi-task mixture (sources in sorted order), its probability of being drawn:
    a source's weight (default 1) spread over its examples. None when no weight is set: uniform draws
    over the union, as before weights existed (the same draws, the same tables)."""
    if not weights:
        return None
    p = np.concatenate([np.full(len(sources[n]), weights.get(n, 1.0) / len(sources[n])) for n in sorted(sources)])
    return p / p.sum()


def prepare(model, method: str, cfg: Sft):
    """The model to train for `method`: parameters frozen or adapters added as the method says."""
    if method == "full":
        return model
    if method == "last_layers":
        k = cfg.last_layers
        for p in model.parameters():
            p.requires_grad_(False)
        for module in (*model.model.layers[-k:], model.model.norm, model.lm_head):
            for p in module.parameters():
                p.requires_grad_(True)
        return model
    if method == "lora":
        from peft import LoraConfig, get_peft_model  # imports transformers: only when LoRA is asked for

        lora = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=0.0, target_modules=LORA_TARGETS)
        torch.manual_seed(cfg.seed)  # the adapters' initial weights are random draws: seed them
        return get_peft_model(model, lora)
    raise ValueError(f"sft method {method!r}: expected one of {SFT_METHODS}")


def finish(model, method: str, precision: str = "fp32"):
    """Back to a plain Llama (LoRA adapters merged into the weights), in bfloat16 for scoring if precision is bf16."""
    model = model.merge_and_unload() if method == "lora" else model
    return model.to(torch.bfloat16) if precision == "bf16" else model


def fine_tune(model, data, cfg: Sft, seed: int, log=print, probs=None):
    """AdamW at a constant learning rate for cfg.steps steps on the trainable parameters.

    probs: each example's probability of being drawn (a weighted mixture), None for uniform draws."""
    torch.manual_seed(seed)
    trainable = [p for p in model.parameters() if p.requires_grad]
    device = trainable[0].device
    opt = torch.optim.AdamW(trainable, lr=cfg.lr, weight_decay=0.0)
    model.train()
    for step in range(cfg.steps):
        size = min(cfg.batch_size, len(data) if probs is None else int(np.count_nonzero(probs)))
        idx = np.random.default_rng([seed, step]).choice(len(data), size=size, replace=False, p=probs)
        width = max(len(data[i][0]) for i in idx)
        ids = torch.zeros(len(idx), width, dtype=torch.long)
        mask = torch.zeros(len(idx), width, dtype=torch.bool)
        for r, i in enumerate(idx):
            seq, m = data[i]
            ids[r, : len(seq)] = torch.tensor(seq)
            mask[r, : len(m)] = torch.tensor(m, dtype=torch.bool)
        ids, mask = ids.to(device), mask.to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.precision == "bf16"):
            out = model(ids[:, :-1])
        logits = getattr(out, "logits", out).float()  # a transformers model returns an output object; the loss in float32
        losses = F.cross_entropy(logits.reshape(-1, logits.size(-1)), ids[:, 1:].reshape(-1), reduction="none")
        loss = losses[mask[:, 1:].reshape(-1)].mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        opt.step()
        if (step + 1) % 20 == 0 or step + 1 == cfg.steps:
            log(f"sft step {step + 1}/{cfg.steps} loss {loss.item():.4f}")
    model.eval()
    return model


def _prompt(task, cfg):
    """sft.prompt: a name, a mapping {task: name}, or null: the task's first template."""
    prompt = cfg.prompt
    if isinstance(prompt, dict):
        prompt = prompt.get(task.name)
    return prompt or next(iter(task.prompts))


def score_tasks(lm, keys: dict, tasks: dict, cfg: Sft, method: str, data_mix: str):
    """sft_scores rows and sft_example_scores rows: each task's eval split, zero-shot, with the prompt SFT used."""
    rows, per_example = [], []
    for task, examples in tasks.values():
        requests = build_requests(task, examples, [_prompt(task, cfg)], [0], limit=cfg.examples_per_task)
        metrics = score_requests(lm, requests)
        sft_keys = {**keys, "task": task.name, "sft_method": method, "sft_data": data_mix}
        rows += [
            {**sft_keys, "metric": metric, "value": float(np.mean([m[metric] for m in metrics])), "n": len(metrics)}
            for metric in SCORE_METRICS
        ]
        per_example += [
            {
                **sft_keys,
                "example": req.example,
                "correct": m["acc"] == 1.0,
                "correct_norm": m["acc_norm"] == 1.0,
                "logprob_correct": m["logprob_correct"],
                "prob_correct_norm": m["norm_correct_prob"],
            }
            for req, m in zip(requests, metrics)
        ]
    return rows, per_example


def run_sft(base, keys: dict, tasks: dict, cfg: Sft, method: str, log=print, instructions=None):
    """Single-task SFT of a fresh copy of the LM `base`'s model per task (and one multi-task SFT if configured).

    tasks: name -> (Task, examples); instructions: sft.data's name -> rows (read_instruction_rows), each
    fine-tuned on alone (scored on every task) and part of the mixture. Returns the sft_scores and
    sft_example_scores tables.
    """
    data = {name: sft_batches(base, task, examples, _prompt(task, cfg)) for name, (task, examples) in tasks.items()}
    instructions = instructions or {}
    for name, rows in instructions.items():
        try:
            data[name] = instruction_batches(base, rows)
        except SftDataError as e:
            raise SftDataError(f"sft.data {name!r}: {e}") from e
    rows, per_example = [], []
    for name in tasks:
        log(f"single-task {method} SFT on {name}")
        model = finish(
            fine_tune(prepare(copy.deepcopy(base.model), method, cfg), data[name], cfg, cfg.seed, log), method, cfg.precision
        )
        scores, examples = score_tasks(base.with_model(model), keys, {name: tasks[name]}, cfg, method, "single")
        rows, per_example = rows + scores, per_example + examples
    for name in instructions:
        log(f"{method} SFT on instruction data {name}")
        model = finish(fine_tune(prepare(copy.deepcopy(base.model), method, cfg), data[name], cfg, cfg.seed, log), method)
        scores, examples = score_tasks(base.with_model(model), keys, tasks, cfg, method, f"data:{name}")
        rows, per_example = rows + scores, per_example + examples
    if cfg.multitask and len(data) > 1:
        log(f"multi-task {method} SFT on {sorted(data)}")
        mixed = [item for name in sorted(data) for item in data[name]]
        probs = mixture_probabilities(data, cfg.weights)
        model = finish(
            fine_tune(prepare(copy.deepcopy(base.model), method, cfg), mixed, cfg, cfg.seed, log, probs), method, cfg.precision
        )
        scores, examples = score_tasks(base.with_model(model), keys, tasks, cfg, method, "multitask")
        rows, per_example = rows + scores, per_example + examples
    return (
        tables.to_table("sft_scores", tables.rows_to_columns(rows, "sft_scores")),
        tables.to_table("sft_example_scores", tables.rows_to_columns(per_example, "sft_example_scores")),
    )
