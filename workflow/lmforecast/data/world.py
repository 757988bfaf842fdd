"""The embedded synthetic world: text domains and the downstream tasks that depend on them.

Everything is generated deterministically from one seed, so the default workflow runs
offline. Each task draws on exactly one domain (TASK_DOMAIN), and in a known way:

- facts      -> fact_qa:   closed-book QA about entities whose facts occur only in
                           pre-training text (SFT teaches the format, not the facts).
- arithmetic -> arith_mc:  multiple-choice sums and differences of numbers below 16 (distractors 5-10 off).
- code       -> var_track: the value of a variable after a short assignment program.
- prose      -> sentiment: polarity of a templated review (its adjectives all agree).

Task examples are split into `sft` and `eval`; for fact_qa the split is by entity (the
first `sft_entities` entities for SFT, the rest for eval), so post-SFT accuracy on `eval`
measures what pre-training stored. With `qa_entities`, the first SFT entities' facts also occur
as "Q: ... A: ..." sentences in the facts text; the eval entities' facts never do.
"""

import json
from pathlib import Path

import numpy as np

from lmforecast.io import atomic_path
from lmforecast.settings import World

DOMAINS = ("facts", "arithmetic", "code", "prose")
TASK_DOMAIN = {"fact_qa": "facts", "arith_mc": "arithmetic", "var_track": "code", "sentiment": "prose"}
TASKS = tuple(TASK_DOMAIN)
SPLITS = ("sft", "eval")

_SYLLABLES = ["ka", "lo", "mi", "ta", "ren", "vo", "sa", "zu", "pe", "dor", "li", "mar", "no", "bi", "gu", "fen"]
_RELATIONS = {
    "city": {
        "values": ["Belfa", "Orin", "Kastro", "Velum", "Drass", "Tiber", "Munk", "Selo", "Ardel", "Pryn"],
        "sentences": ["{e} lives in {v}.", "The home of {e} is {v}."],
        "prefix": "{e} lives in",
        "question": "Where does {e} live?",
    },
    "job": {
        "values": ["baker", "pilot", "farmer", "doctor", "singer", "tailor", "sailor", "judge"],
        "sentences": ["{e} works as a {v}.", "By trade, {e} is a {v}."],
        "prefix": "{e} works as a",
        "question": "What is the job of {e}?",
    },
    "color": {
        "values": ["red", "blue", "green", "yellow", "purple", "orange", "white", "black"],
        "sentences": ["{e} likes the color {v}.", "The favorite color of {e} is {v}."],
        "prefix": "{e} likes the color",
        "question": "Which color does {e} like?",
    },
}
# A fact asked and answered, one of three forms for the `qa_entities` (all SFT entities): seeing some entities'
# facts in question form teaches a model that the question retrieves the stored fact, so that the other
# entities' facts, seen only as statements, become extractable (Allen-Zhu & Li 2023, Physics of LMs 3.1:
# "mixed training"). Worded unlike SFT's template, which SFT still has to teach.
_QA_SENTENCE = "Q: {q} A: {{v}}."
_POSITIVE = ["wonderful", "brilliant", "great", "charming", "superb", "delightful", "moving", "fresh"]
_NEGATIVE = ["awful", "dull", "terrible", "boring", "clumsy", "dreadful", "flat", "tedious"]
_NOUNS = ["film", "plot", "cast", "music", "ending", "story", "dialogue", "pacing"]
_VARIABLES = ["a", "b", "c", "d", "e"]
_OPS = {"+": "plus", "-": "minus"}
OPERANDS = 16  # arithmetic's operands are below this
ARITH_PROBLEMS = OPERANDS**2 + OPERANDS * (OPERANDS + 1) // 2  # a + b, and a - b with b <= a: arith_mc's distinct questions


def _rng(spec, *stream):
    """An independent, reproducible random stream per (seed, purpose)."""
    return np.random.default_rng([spec.seed, *stream])


def _entity_names(spec):
    rng = _rng(spec, 1)
    names = []
    while len(names) < spec.n_entities:
        name = "".join(rng.choice(_SYLLABLES, size=int(rng.integers(2, 4)))).capitalize()
        if name not in names:
            names.append(name)
    return names


def _facts(spec):
    """entity -> relation -> value, the ground truth behind the facts domain and fact_qa."""
    rng = _rng(spec, 2)
    return {e: {r: str(rng.choice(rel["values"])) for r, rel in _RELATIONS.items()} for e in _entity_names(spec)}


def _fact_doc(rng, facts, qa):
    entities = list(facts)
    sentences = []
    for _ in range(int(rng.integers(4, 9))):
        e = entities[int(rng.integers(len(entities)))]
        r = list(_RELATIONS)[int(rng.integers(len(_RELATIONS)))]
        forms = _RELATIONS[r]["sentences"] + ([_QA_SENTENCE.format(q=_RELATIONS[r]["question"])] if e in qa else [])
        sentences.append(forms[int(rng.integers(len(forms)))].format(e=e, v=facts[e][r]))
    return " ".join(sentences)


def _arith_problem(rng):
    op = "+" if rng.random() < 0.5 else "-"
    # operands below 16: 392 distinct problems, each seen often enough in pre-training for these
    # models to store it; room for 100 SFT and 292 eval ones
    a, b = int(rng.integers(0, OPERANDS)), int(rng.integers(0, OPERANDS))
    if op == "-" and b > a:
        a, b = b, a
    return a, op, b, a + b if op == "+" else a - b


def _arith_doc(rng):
    parts = []
    for _ in range(int(rng.integers(6, 13))):
        a, op, b, c = _arith_problem(rng)
        parts.append(f"{a} {op} {b} = {c}." if rng.random() < 0.7 else f"{a} {_OPS[op]} {b} is {c}.")
    return " ".join(parts)


def _program(rng):
    """A short assignment program and the final value of every variable it defines."""
    values, statements = {}, []
    # 2-4 statements, a copy one time in four: a lookup (and sometimes one hop) that 2-3 layers can learn
    for _ in range(int(rng.integers(2, 5))):
        var = _VARIABLES[int(rng.integers(len(_VARIABLES)))]
        if values and rng.random() < 0.25:
            src = list(values)[int(rng.integers(len(values)))]
            statements.append(f"{var} = {src}")
            values[var] = values[src]
        else:
            v = int(rng.integers(0, 10))
            statements.append(f"{var} = {v}")
            values[var] = v
    return " ; ".join(statements), values


def _code_doc(rng):
    lines = []
    for _ in range(int(rng.integers(2, 5))):
        program, values = _program(rng)
        var = list(values)[int(rng.integers(len(values)))]
        lines.append(f"{program} ; print {var} -> {values[var]}")
    return "\n".join(lines)


def _review(rng):
    # the adjectives all agree: each adjective's polarity is what the prose teaches (a majority vote over
    # disagreeing adjectives stayed at chance for models of this size)
    positive = bool(rng.random() < 0.5)
    polarity = [positive] * 3
    nouns = rng.choice(_NOUNS, size=3, replace=False)
    adjs = [str(rng.choice(_POSITIVE if p else _NEGATIVE)) for p in polarity]
    text = f"The {nouns[0]} was {adjs[0]}, the {nouns[1]} felt {adjs[1]} and the {nouns[2]} was {adjs[2]}."
    return text, "positive" if positive else "negative"


def _prose_doc(rng):
    reviews = []
    for _ in range(int(rng.integers(1, 4))):
        text, label = _review(rng)
        reviews.append(f"{text} Overall, it was {label}.")
    return " ".join(reviews)


def domain_documents(spec: World, domain: str, split: str) -> list[str]:
    """Documents of one domain; `split` is 'train' (pre-training) or 'valid' (domain losses)."""
    n = spec.train_docs if split == "train" else spec.valid_docs
    rng = _rng(spec, 10, DOMAINS.index(domain), 0 if split == "train" else 1)
    if domain == "facts":
        facts = _facts(spec)
        qa = set(list(facts)[: spec.qa_entities])  # the first SFT entities (fact_qa's SFT split is the first ones)
        return [_fact_doc(rng, facts, qa) for _ in range(n)]
    make = {"arithmetic": _arith_doc, "code": _code_doc, "prose": _prose_doc}[domain]
    return [make(rng) for _ in range(n)]


def write_domains(spec: World, directory):
    """Each domain's documents as directory/<domain>.jsonl: one {"split", "text"} per line, train then valid."""
    for domain in DOMAINS:
        with atomic_path(Path(directory) / f"{domain}.jsonl") as tmp, open(tmp, "w") as f:
            for split in ("train", "valid"):
                for doc in domain_documents(spec, domain, split):
                    f.write(json.dumps({"split": split, "text": doc}) + "\n")


def read_documents(path, split: str, limit: int | None = None) -> list[str]:
    """The texts of one split of a domain file (write_domains'), the first `limit` of them (None: all)."""
    with open(path) as f:
        docs = [d["text"] for d in map(json.loads, f) if d["split"] == split]
    return docs[:limit]


def _with_distractors(rng, correct, pool, k=3):
    others = [x for x in dict.fromkeys(pool) if x != correct]
    choices = [correct] + [str(x) for x in rng.choice(others, size=min(k, len(others)), replace=False)]
    order = rng.permutation(len(choices))
    choices = [choices[i] for i in order]
    return choices, choices.index(correct)


def _fact_qa(spec, rng):
    facts = _facts(spec)
    entities = list(facts)
    # SFT needs only enough entities to teach the answer format; every other entity's facts are eval questions.
    n_sft = spec.n_sft_entities
    out = []
    for i, e in enumerate(entities):
        for r, rel in _RELATIONS.items():
            choices, gold = _with_distractors(rng, facts[e][r], rel["values"])
            fields = {"entity": e, "relation": r, "prefix": rel["prefix"].format(e=e), "question": rel["question"].format(e=e)}
            out.append({"split": "sft" if i < n_sft else "eval", "fields": fields, "choices": choices, "gold": gold})
    return out


def _arith_mc_example(rng):
    a, op, b, c = _arith_problem(rng)
    # distractors 5 to 10 away: models of this size learn a result's magnitude long before its exact value
    pool = [str(c + d) for d in (-10, -9, -8, -7, -6, -5, 5, 6, 7, 8, 9, 10) if c + d >= 0]
    choices, gold = _with_distractors(rng, str(c), pool)
    return {"fields": {"a": a, "b": b, "op": op, "op_word": _OPS[op]}, "choices": choices, "gold": gold}


def _var_track_example(rng):
    program, values = _program(rng)
    var = list(values)[int(rng.integers(len(values)))]
    choices, gold = _with_distractors(rng, str(values[var]), [str(d) for d in range(10)])
    return {"fields": {"program": program, "var": var}, "choices": choices, "gold": gold}


def _sentiment_example(rng):
    text, label = _review(rng)
    return {"fields": {"review": text}, "choices": ["positive", "negative"], "gold": 0 if label == "positive" else 1}


def task_examples(spec: World, task: str) -> list[dict]:
    """All examples of a task, each with split, fields (for the prompt templates), choices and gold."""
    rng = _rng(spec, 20, TASKS.index(task))
    if task == "fact_qa":
        examples = _fact_qa(spec, rng)
        by_split = {s: [x for x in examples if x["split"] == s] for s in SPLITS}
        examples = by_split["sft"][: spec.sft_examples] + by_split["eval"][: spec.eval_examples]
    else:
        make = {"arith_mc": _arith_mc_example, "var_track": _var_track_example, "sentiment": _sentiment_example}[task]
        examples = []
        seen = set()
        # Unique prompts, and no eval prompt that also occurs in the SFT split.
        for split, n in (("sft", spec.sft_examples), ("eval", spec.eval_examples)):
            if task == "arith_mc":  # no more exist: stop at them rather than after 100 n tries
                n = min(n, ARITH_PROBLEMS - len(seen))
            count, tries = 0, 0
            while count < n and tries < 100 * n:
                tries += 1
                x = make(rng)
                key = repr(sorted(x["fields"].items()))
                if key in seen:
                    continue
                seen.add(key)
                examples.append({"split": split, **x})
                count += 1
    for i, x in enumerate(examples):
        x["id"] = f"{task}-{x['split']}-{i:05d}"
    return examples
