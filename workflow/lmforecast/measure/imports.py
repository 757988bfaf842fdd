"""Analysis-only mode: finished results imported into the tables of results/tables/.

Two sources, each optional, combined per run:
- a model ladder's wide CSV, one file per run, one row per checkpoint (step, tokens,
  FLOPs, per-domain validation cross-entropy, per-task scores), with a column mapping;
- lm-evaluation-harness results JSON (0.4.x `results_<date>.json`), one file per
  checkpoint, mapped to (run, step) by a regex over the file's path or an explicit list.
Per-run metadata (parameter counts, mixture, ...) comes from the import spec.

Every value is checked before any table is written; a bad one is reported with its
file, its row (CSV line number; the file itself for JSON), its column or field, and
what was expected. Unknown quantities are written as nulls, never invented.
"""

import json
import math
import re
from pathlib import Path

import polars as pl

from lmforecast import tables

NAMES = tuple(tables.SCHEMAS)
PROMPT = "default"  # imported scores have no prompt variants


class ImportDataError(ValueError):
    pass


# --- lm-evaluation-harness results JSON ---------------------------------------------


def lm_eval_files(spec: dict) -> list[tuple[str, str, int]]:
    """(path, run, step) of every results file: an explicit list, or every *.json under
    `dir` whose path relative to it matches `pattern` (named groups run and step)."""
    if "files" in spec:
        return [(f["path"], f["run"], int(f["step"])) for f in spec["files"]]
    root = Path(spec["dir"])
    if not root.is_dir():
        raise ImportDataError(f"import.lm_eval.dir: {root} is not a directory")
    pattern = re.compile(spec["pattern"])
    found = []
    for path in sorted(root.rglob("*.json")):
        rel = path.relative_to(root).as_posix()
        m = pattern.fullmatch(rel)
        if not m:
            raise ImportDataError(
                f"{path}: the path {rel!r} does not match import.lm_eval.pattern {spec['pattern']!r}; "
                "expected every *.json under the directory to name its run and step"
            )
        found.append((str(path), m["run"], int(m["step"])))
    if not found:
        raise ImportDataError(f"import.lm_eval.dir: no *.json files under {root}")
    return found


def _no_duplicate_keys(path):
    def hook(pairs):
        keys = [k for k, _ in pairs]
        dup = next((k for k in keys if keys.count(k) > 1), None)
        if dup is not None:
            raise ImportDataError(f"{path}: key {dup!r} appears twice in one object; expected each task/metric once")
        return dict(pairs)

    return hook


def _metric_name(key: str):
    """'acc,none' -> 'acc'; 'exact_match,strict-match' -> 'exact_match,strict-match'; stderr and alias -> None."""
    name, _, filt = key.partition(",")
    if name == "alias" or name.endswith("_stderr"):
        return None
    return name if filt in ("", "none") else key


def _n_from_stderr(result: dict):
    """A task's number of examples from an accuracy's standard error, for files without n-samples (lm-eval before
    0.4.3, e.g. Pythia's): lm-eval gives the sample standard deviation over sqrt(n), so se^2 = p (1 - p) / (n - 1).
    None where no accuracy has a usable one (a score of 0 or 1, "N/A") or n comes out other than a whole number."""
    for metric in ("acc", "acc_norm"):
        for suffix in ("", ",none"):  # 0.3-era keys, 0.4-era keys
            p, se = result.get(metric + suffix), result.get(f"{metric}_stderr{suffix}")
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (p, se)) or not 0 < p < 1 or se <= 0:
                continue
            n = p * (1 - p) / se**2 + 1
            if abs(n - round(n)) < 0.01 and round(n) >= 2:
                return round(n)
    return None


def _number(value, where):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ImportDataError(f"{where}: {value!r} is not a number")
    if math.isnan(value) or math.isinf(value):
        raise ImportDataError(f"{where}: {value} is not a finite number")
    return float(value)


def read_lm_eval(path, run: str, step: int, spec: dict, chance: dict) -> list[dict]:
    """task_scores rows of one results file (group aggregates are skipped unless listed in `tasks`)."""
    try:
        data = json.loads(Path(path).read_text(), object_pairs_hook=_no_duplicate_keys(path))
    except json.JSONDecodeError as e:
        raise ImportDataError(f"{path}: not valid JSON ({e}); expected lm-evaluation-harness results JSON") from e
    except OSError as e:
        raise ImportDataError(f"{path}: cannot be read ({e.strerror})") from e
    results = data.get("results") if isinstance(data, dict) else None
    if not isinstance(results, dict) or not results:
        raise ImportDataError(f"{path}: field 'results' missing or empty; expected {{task: {{'acc,none': value, ...}}}}")
    wanted = spec.get("tasks")
    # group aggregates (e.g. mmlu over its subtasks); group_subtasks also lists plain tasks, with no subtasks
    groups = set(data.get("groups", {})) | {g for g, subtasks in data.get("group_subtasks", {}).items() if subtasks}
    tasks = wanted if wanted else sorted(t for t in results if t not in groups)
    rows = []
    for task in tasks:
        if task not in results:
            raise ImportDataError(
                f"{path}: field results.{task} missing; expected a result for every task of import.lm_eval.tasks"
            )
        shots = data.get("n-shot", {}).get(task, data.get("configs", {}).get(task, {}).get("num_fewshot"))
        if shots is None and "n-shot" not in data and "configs" not in data:  # 0.3-era: one config for every task
            shots = (data.get("config") or {}).get("num_fewshot")
        if isinstance(shots, bool) or not isinstance(shots, int) or shots < 0:
            raise ImportDataError(
                f"{path}: field n-shot.{task} is {shots!r}; expected a number of shots >= 0 "
                f"(or configs.{task}.num_fewshot; 0.3-era files: config.num_fewshot)"
            )
        samples = data.get("n-samples", {}).get(task, {})
        n = samples.get("effective", samples.get("original"))  # not in files before lm-eval 0.4.3
        if n is None:
            n = _n_from_stderr(results[task])
        seen = {}
        for key, value in results[task].items():
            metric = _metric_name(key)
            if metric is None or (spec.get("metrics") and metric not in spec["metrics"]):
                continue
            if metric in seen:
                raise ImportDataError(
                    f"{path}: results.{task} has metric {metric!r} twice ({seen[metric]!r} and {key!r}); "
                    "expected each task/metric once"
                )
            seen[metric] = key
            rows.append(
                {
                    "run": run,
                    "step": step,
                    "task": task,
                    "prompt": PROMPT,
                    "shots": shots,
                    "metric": metric,
                    "value": _number(value, f"{path}: field results.{task}.{key!r}"),
                    "n": n,
                    "chance": float(chance.get(task, 0.0)),
                }
            )
        if not seen:
            raise ImportDataError(f"{path}: results.{task} has no metric; expected keys like 'acc,none'")
    return rows


# --- a ladder's wide CSV ------------------------------------------------------------


def _column_map(columns, mapping, groups, where):
    """Column -> tuple of group values, from a regex (named groups) or an explicit map."""
    if mapping is None:
        return {}
    if isinstance(mapping, str):
        rx = re.compile(mapping)
        out = {}
        for c in columns:
            m = rx.fullmatch(c)
            if m:
                out[c] = tuple(m[g] for g in groups)
        if not out:
            raise ImportDataError(f"{where}: no column matches {mapping!r}; columns are {list(columns)}")
        return out
    missing = [c for c in mapping if c not in columns]
    if missing:
        raise ImportDataError(f"{where}: columns {missing} missing; expected them (named in the import spec)")
    return {c: (v,) if isinstance(v, str) else tuple(v[g] for g in groups) for c, v in mapping.items()}


def _numbers(df: pl.DataFrame, column: str, path, integer=False, minimum=None) -> list:
    """A column's values as numbers, each bad cell named by its CSV line (header = line 1)."""
    raw = df[column]
    values = raw.str.strip_chars().cast(pl.Float64, strict=False)
    for i, (text, x) in enumerate(zip(raw, values)):
        where = f"{path}: line {i + 2}, column {column!r}"
        if text is None or text.strip() == "":
            raise ImportDataError(f"{where}: empty; expected a number")
        if x is None:
            raise ImportDataError(f"{where}: {text!r} is not a number")
        if math.isnan(x) or math.isinf(x):
            raise ImportDataError(f"{where}: {text!r}; expected a finite number")
        if minimum is not None and x < minimum:
            raise ImportDataError(f"{where}: {text!r} is negative; expected a value >= {minimum}")
        if integer and x != int(x):
            raise ImportDataError(f"{where}: {text!r}; expected a whole number")
    return [int(x) for x in values] if integer else values.to_list()


def read_ladder(path, run: str, spec: dict, chance: dict, n_params: int | None = None) -> dict:
    """checkpoints, domain_losses and task_scores rows of one run's wide CSV.

    `spec`: import.ladder with the file's own keys over it. Tokens: a column (times scales.tokens) or
    step x tokens_per_step; FLOPs: a column (times scales.flops), flops_per_token x tokens, or 6 N D
    with N = `n_params` (the run's non-embedding parameters)."""
    try:
        df = pl.read_csv(path, infer_schema=False)
    except (OSError, pl.exceptions.PolarsError) as e:
        raise ImportDataError(f"{path}: cannot be read as CSV ({e})") from e
    where = f"{path}: header"
    dup = sorted({c for c in df.columns if c.endswith("_duplicated_0")})
    if dup:
        raise ImportDataError(f"{where}: column names repeated ({dup}); expected each column once")
    fixed = {k: spec[k] for k in ("step", "tokens", "flops", "train_loss") if spec.get(k)}
    missing = [f"{c!r} ({k})" for k, c in fixed.items() if c not in df.columns]
    if missing:
        raise ImportDataError(f"{where}: column(s) {', '.join(missing)} missing; expected the columns that import.ladder names")
    scales = spec.get("scales", {})  # unit of a column, e.g. flops: 1e9 for GFLOPs
    steps = _numbers(df, spec["step"], path, integer=True, minimum=0)
    if spec.get("tokens"):
        tokens = [
            int(round(t * scales.get("tokens", 1)))
            for t in _numbers(df, spec["tokens"], path, integer="tokens" not in scales, minimum=0)
        ]
    elif spec.get("tokens_per_step"):
        tokens = [s * int(spec["tokens_per_step"]) for s in steps]
    else:
        raise ImportDataError(f"{where}: neither a tokens column nor tokens_per_step; expected one in import.ladder")
    if spec.get("flops"):
        flops = [c * scales.get("flops", 1) for c in _numbers(df, spec["flops"], path, minimum=0)]
    elif spec.get("flops_per_token", "6N") != "6N":
        flops = [spec["flops_per_token"] * t for t in tokens]
    else:  # C = 6 N D (Kaplan et al.), N the non-embedding parameters
        flops = [6.0 * n_params * t for t in tokens]
    train_loss = _numbers(df, spec["train_loss"], path) if spec.get("train_loss") else [None] * df.height
    first_line = {}
    for i, s in enumerate(steps):
        if s in first_line:
            raise ImportDataError(
                f"{path}: line {i + 2}, column {spec['step']!r}: step {s} already on line {first_line[s]}; "
                "expected one row per step"
            )
        first_line[s] = i + 2
    domains = _column_map(df.columns, spec.get("domains"), ("domain",), f"{where} (import.ladder.domains)")
    task_cols = _column_map(df.columns, spec.get("tasks"), ("task", "metric"), f"{where} (import.ladder.tasks)")
    owner = {}
    for col, key in task_cols.items():
        if key in owner:
            raise ImportDataError(
                f"{where}: columns {owner[key]!r} and {col!r} both give task {key[0]!r} metric {key[1]!r}; "
                "expected each task/metric once"
            )
        owner[key] = col
    owner = {}
    for col, (domain,) in domains.items():
        if domain in owner:
            raise ImportDataError(
                f"{where}: columns {owner[domain]!r} and {col!r} both give domain {domain!r}; expected each domain once"
            )
        owner[domain] = col
    out = {"checkpoints": [], "domain_losses": [], "task_scores": []}
    for s, t, c, tl in zip(steps, tokens, flops, train_loss):
        out["checkpoints"].append(
            {"run": run, "step": s, "tokens": t, "flops": c, "train_loss": tl, "lr": None, "tokens_by_domain": None}
        )
    for col, (domain,) in domains.items():
        for s, loss in zip(steps, _numbers(df, col, path, minimum=0)):
            out["domain_losses"].append(
                {
                    "run": run,
                    "step": s,
                    "domain": domain,
                    "loss": loss,
                    "bits_per_byte": None,
                    "tokens": None,
                    "bytes": None,
                    "span_corruption_loss": None,
                }
            )
    shots = spec.get("shots", 0)
    for col, (task, metric) in task_cols.items():
        for s, value in zip(steps, _numbers(df, col, path)):
            out["task_scores"].append(
                {
                    "run": run,
                    "step": s,
                    "task": task,
                    "prompt": PROMPT,
                    "shots": shots,
                    "metric": metric,
                    "value": value,
                    "n": None,
                    "chance": float(chance.get(task, 0.0)),
                }
            )
    return out


# --- metric names, task groups, ranges -------------------------------------------------

# metrics that are a share of examples: checked to lie in [0, 1]
FRACTION_METRICS = re.compile(r"(acc|acc_norm|exact_match|em|f1|mc1|mc2|pct_stereotype)(,.*)?")


def _sized(scores: list[dict], sizes: dict) -> list[dict]:
    """import.task_sizes: each task's number of examples, where its files do not say (ladder CSVs; lm-eval files
    without n-samples or a usable standard error); a task named there that no file has is an error (a misspelling)."""
    unknown = sorted(set(sizes) - {r["task"] for r in scores})
    if unknown:
        raise ImportDataError(f"import.task_sizes: tasks {unknown} have no score in any imported file; expected imported tasks")
    return [{**r, "n": sizes[r["task"]]} if r["n"] is None and r["task"] in sizes else r for r in scores]


def _renamed(scores: list[dict], names: dict) -> list[dict]:
    """Metrics renamed by import.metric_names (e.g. len_norm -> acc_norm, bpb -> bits_per_byte); two
    metrics of one score becoming the same name is an error."""
    if not names:
        return scores
    out, seen = [], set()
    for r in scores:
        r = {**r, "metric": names.get(r["metric"], r["metric"])}
        key = (r["run"], r["step"], r["task"], r["prompt"], r["shots"], r["metric"])
        if key in seen:
            raise ImportDataError(
                f"import.metric_names: run {r['run']!r} step {r['step']} task {r['task']!r} has two metrics named "
                f"{r['metric']!r} after renaming; expected the renaming to keep metrics apart"
            )
        seen.add(key)
        out.append(r)
    return out


def _group_n(members: list[dict], weights: dict, mean: float):
    """A group's effective number of examples: the n whose binomial error sqrt(p (1 - p) / n) equals that of its
    weighted mean of the members' shares, sum (w_i / W)^2 p_i (1 - p_i) / n_i (independent examples). None for a
    metric that is not a share of examples, where a member's n is unknown, or where the mean is 0 or 1."""
    if not FRACTION_METRICS.fullmatch(members[0]["metric"]) or any(m["n"] is None for m in members) or not 0 < mean < 1:
        return None
    total = sum(weights[m["task"]] for m in members)
    var = sum((weights[m["task"]] / total) ** 2 * m["value"] * (1 - m["value"]) / m["n"] for m in members)
    return round(mean * (1 - mean) / var) if var > 0 else None


def task_group_rows(scores: list[dict], groups: list[dict]) -> list[dict]:
    """A weighted average per group (e.g. MMLU by subject size), at every checkpoint, prompt, shots and
    metric where all of the group's tasks have a score; its chance is the same average of chances."""
    out = []
    present = {r["task"] for r in scores}
    for i, g in enumerate(groups):
        weights = g["tasks"] if isinstance(g["tasks"], dict) else dict.fromkeys(g["tasks"], 1.0)
        missing = sorted(set(weights) - present)
        if missing:
            raise ImportDataError(f"import.task_groups[{i}] ({g['name']}): tasks {missing} have no score in any imported file")
        if g["name"] in present:
            raise ImportDataError(f"import.task_groups[{i}]: {g['name']!r} is already an imported task; expected a new name")
        total = float(sum(weights.values()))
        cells = {}
        for r in scores:
            if r["task"] in weights:
                cells.setdefault((r["run"], r["step"], r["prompt"], r["shots"], r["metric"]), []).append(r)
        for (run, step, prompt, shots, metric), members in sorted(cells.items(), key=lambda kv: str(kv[0])):
            if len(members) < len(weights):
                continue  # a checkpoint where some task of the group was not evaluated: no average
            mean = sum(weights[m["task"]] * m["value"] for m in members) / total
            chance = sum(weights[m["task"]] * m["chance"] for m in members) / total
            n = _group_n(members, weights, mean)
            out.append(
                {
                    "run": run,
                    "step": step,
                    "task": g["name"],
                    "prompt": prompt,
                    "shots": shots,
                    "metric": metric,
                    "value": mean,
                    "n": n,
                    "chance": chance,
                }
            )
    return out


def perplexity_losses(scores: list[dict], domain_losses: list[dict], spec: dict) -> list[dict]:
    """domain_losses rows from task perplexities (import.perplexity_losses, task -> metric): the loss is
    ln(perplexity), the task's text a held-out domain named after the task. An evaluation suite without
    a validation loss (Pythia's) still has one (lambada_openai's ppl), for the chains through a loss."""
    out = []
    taken = {(r["run"], r["step"], r["domain"]) for r in domain_losses}
    for task, metric in spec.items():
        found = [r for r in scores if r["task"] == task and r["metric"] == metric]
        if not found:
            present = sorted({r["metric"] for r in scores if r["task"] == task})
            raise ImportDataError(
                f"import.perplexity_losses.{task}: no task_scores rows of task {task!r} with metric {metric!r}; "
                f"expected a perplexity metric of that task (its metrics: {present or 'none, no such task'})"
            )
        for r in found:
            if (r["run"], r["step"], task) in taken:
                raise ImportDataError(
                    f"import.perplexity_losses.{task}: run {r['run']!r} step {r['step']} already has a domain loss "
                    f"{task!r}; expected each domain once"
                )
            if r["value"] < 1.0:  # a perplexity is exp of a mean negative log-likelihood, never below 1
                raise ImportDataError(
                    f"import.perplexity_losses.{task}: run {r['run']!r} step {r['step']} metric {metric!r} is "
                    f"{r['value']}; expected a perplexity >= 1"
                )
            out.append(
                {
                    "run": r["run"],
                    "step": r["step"],
                    "domain": task,
                    "loss": math.log(r["value"]),
                    "bits_per_byte": None,
                    "tokens": None,
                    "bytes": None,
                    "span_corruption_loss": None,
                }
            )
    return out


def _check_ranges(rows: dict, source: dict):
    """Shares of examples lie in [0, 1]; a run's tokens and FLOPs do not fall as its steps rise."""
    for r in rows["task_scores"]:
        if FRACTION_METRICS.fullmatch(r["metric"]) and not 0.0 <= r["value"] <= 1.0:
            raise ImportDataError(
                f"{source.get((r['run'], r['step']), 'import')}: run {r['run']!r} step {r['step']} task {r['task']!r} "
                f"metric {r['metric']!r} is {r['value']}; expected a share of examples in [0, 1]"
            )
    last = {}
    for c in sorted(rows["checkpoints"], key=lambda c: (c["run"], c["step"])):
        prev = last.get(c["run"])
        for field in ("tokens", "flops"):
            if prev is not None and c[field] < prev[field]:
                raise ImportDataError(
                    f"{source.get((c['run'], c['step']), 'import')}: run {c['run']!r} step {c['step']} has {field} "
                    f"{c[field]:g}, fewer than step {prev['step']} ({prev[field]:g}); expected {field} non-decreasing with steps"
                )
        last[c["run"]] = c


# --- the tables ----------------------------------------------------------------------


def _run_row(meta: dict, checkpoints: list[dict]) -> dict:
    """Defaults for what the spec leaves out: n_params_nonembed = n_params, objective clm,
    mixture 'default', seed 0, lr unknown (null), tokens_planned = the last checkpoint's tokens."""
    return {
        "run": meta["name"],
        "n_params": int(meta["n_params"]),
        "n_params_nonembed": int(meta.get("n_params_nonembed", meta["n_params"])),
        "objective": meta.get("objective", "clm"),
        "mixture": meta.get("mixture", "default"),
        "seed": int(meta.get("seed", 0)),
        "lr": meta.get("lr"),
        "tokens_planned": int(meta.get("tokens_planned", max((c["tokens"] for c in checkpoints), default=0))),
        "size": None,
        "d_model": None,
        "n_layers": None,
    }


def import_tables(spec: dict) -> dict:
    """The import section of the config -> every table (Arrow), checked before anything is written."""
    chance = spec.get("chance", {})
    meta = {}
    for i, r in enumerate(spec["runs"]):
        if r["name"] in meta:
            raise ImportDataError(f"import.runs[{i}].name: duplicate run {r['name']!r}; expected each run once")
        meta[r["name"]] = r
    rows = {name: [] for name in NAMES}
    source = {}  # (run, step) -> file that gave the checkpoint

    def known(run, where):
        if run not in meta:
            raise ImportDataError(f"{where}: run {run!r} is not in import.runs; expected one of {sorted(meta)}")

    ladder = spec.get("ladder")
    for i, f in enumerate(ladder["files"] if ladder else []):
        known(f["run"], f"import.ladder.files[{i}]")
        if any(r == f["run"] for r, _ in source):
            raise ImportDataError(
                f"import.ladder.files[{i}]: run {f['run']!r} has a second ladder file ({f['path']}); expected one CSV per run"
            )
        # a file's own keys (its columns, derived columns, units) over the section's
        own = {k: v for k, v in ladder.items() if k != "files"}
        # a file that derives tokens or FLOPs does not read the section's column of them
        own = {
            k: v
            for k, v in own.items()
            if not (k == "tokens" and "tokens_per_step" in f or k == "flops" and "flops_per_token" in f)
        }
        own |= {k: v for k, v in f.items() if k not in ("run", "path")}
        m = meta[f["run"]]
        part = read_ladder(f["path"], f["run"], own, chance, n_params=m.get("n_params_nonembed", m["n_params"]))
        for c in part["checkpoints"]:
            source[(c["run"], c["step"])] = f["path"]
        for name, r in part.items():
            rows[name] += r
    score_source = {
        (r["run"], r["step"], r["task"], r["prompt"], r["shots"], r["metric"]): source[(r["run"], r["step"])]
        for r in rows["task_scores"]
    }
    lm_eval = spec.get("lm_eval")
    evaluated = {}
    for path, run, step in lm_eval_files(lm_eval) if lm_eval else []:
        known(run, path)
        if (run, step) in evaluated:
            raise ImportDataError(
                f"{path}: run {run!r} step {step} already imported from {evaluated[(run, step)]}; "
                "expected one results file per checkpoint"
            )
        evaluated[(run, step)] = path
        for r in read_lm_eval(path, run, step, lm_eval, chance):
            key = (r["run"], r["step"], r["task"], r["prompt"], r["shots"], r["metric"])
            if key in score_source:
                raise ImportDataError(
                    f"{path}: task {r['task']!r} metric {r['metric']!r} ({r['shots']}-shot) of run {run!r} "
                    f"step {step} is also in {score_source[key]}; expected each task/metric once"
                )
            score_source[key] = path
            rows["task_scores"].append(r)
        if (run, step) not in source:  # a checkpoint known only from its evaluation: compute from the run's metadata
            per_step = meta[run].get("tokens_per_step")
            if per_step is None:
                raise ImportDataError(
                    f"{path}: run {run!r} step {step} is in no ladder file, and import.runs entry {run!r} "
                    "has no tokens_per_step; expected one of them to give the checkpoint's tokens"
                )
            tokens = step * per_step
            # C = 6 N D (Kaplan et al.), N the non-embedding parameters: the architecture's extra terms are unknown here
            n = meta[run].get("n_params_nonembed", meta[run]["n_params"])
            rows["checkpoints"].append(
                {
                    "run": run,
                    "step": step,
                    "tokens": tokens,
                    "flops": 6.0 * n * tokens,
                    "train_loss": None,
                    "lr": None,
                    "tokens_by_domain": None,
                }
            )
            source[(run, step)] = path
    rows["task_scores"] = _sized(_renamed(rows["task_scores"], spec.get("metric_names", {})), spec.get("task_sizes", {}))
    rows["task_scores"] += task_group_rows(rows["task_scores"], spec.get("task_groups", []))
    rows["domain_losses"] += perplexity_losses(rows["task_scores"], rows["domain_losses"], spec.get("perplexity_losses", {}))
    _check_ranges(rows, source)
    for i, (name, m) in enumerate(meta.items()):
        ck = [c for c in rows["checkpoints"] if c["run"] == name]
        if not ck:
            raise ImportDataError(
                f"import.runs[{i}]: run {name!r} has no checkpoint in any imported file; "
                "expected it in import.ladder.files or import.lm_eval"
            )
        rows["runs"].append(_run_row(m, ck))
    order = {
        "runs": ["run"],
        "checkpoints": ["run", "step"],
        "domain_losses": ["run", "step", "domain"],
        "task_scores": ["run", "step", "task", "prompt", "shots", "metric"],
    }
    out = {}
    for name in NAMES:
        table = tables.to_table(name, tables.rows_to_columns(rows[name], name))
        out[name] = table.sort_by([(k, "ascending") for k in order[name]]) if name in order else table
    return out


def write_tables(built: dict, out_dir):
    for name, table in built.items():
        tables.write(table, Path(out_dir) / f"{name}.parquet")
