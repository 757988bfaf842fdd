"""SFT on instruction data from local files: a chat JSONL through a tokenizer's chat template with the loss
on the completions only, prompt/completion Parquet, a weighted multi-task mixture, and bad data stopped by
the config check."""

import copy
import json

import numpy as np
import polars as pl
import pytest
from test_external import DEFAULT
from tiny import hf_llama_dir

from lmforecast.config import ConfigError, validate
from lmforecast.data.world import task_examples
from lmforecast.measure.lm import HFLM
from lmforecast.measure.sft import SftDataError, instruction_batches, mixture_probabilities, read_instruction_rows, run_sft
from lmforecast.measure.tasks import load_task
from lmforecast.settings import Sft

# A chat template in the usual shape (role markers, a generation prompt for the assistant's turn).
CHAT_TEMPLATE = (
    "{% for m in messages %}<{{ m['role'] }}>: {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<assistant>:{% endif %}"
)
CHATS = [
    {
        "messages": [
            {"role": "system", "content": "Answer briefly."},
            {"role": "user", "content": f"What is {i} plus 1?"},
            {"role": "assistant", "content": f"It is {i + 1}."},
        ]
    }
    for i in range(6)
]
PAIRS = [{"prompt": f"Question: What is {i} + 2?\nAnswer:", "completion": f" {i + 2}"} for i in range(6)]


@pytest.fixture(scope="module")
def chat_lm(tiny_tokenizer, tmp_path_factory):
    """A tiny transformers Llama whose tokenizer has a chat template."""
    from transformers import AutoTokenizer

    directory = hf_llama_dir(tiny_tokenizer, tmp_path_factory.mktemp("chat") / "hf")
    tok = AutoTokenizer.from_pretrained(directory)
    tok.chat_template = CHAT_TEMPLATE
    tok.save_pretrained(directory)
    return directory, HFLM.load(directory)


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_chat_jsonl_is_rendered_with_the_chat_template_and_labels_only_the_completions(chat_lm, tmp_path):
    _, lm = chat_lm
    rows = read_instruction_rows(_jsonl(tmp_path / "chat.jsonl", CHATS))
    batches = instruction_batches(lm, rows)
    assert len(batches) == len(CHATS)
    for row, (ids, mask) in zip(CHATS, batches):
        whole = lm.tokenizer.apply_chat_template(row["messages"], tokenize=False)
        assert lm.tokenizer.decode(ids[1:]) == whole  # start token, then the rendered conversation
        # the batch's labels (the mask) cover exactly the last assistant turn, after the generation prompt
        first = mask.index(1)
        assert set(mask[:first]) == {0} and set(mask[first:]) == {1}
        assert lm.tokenizer.decode(ids[first:]) == " " + row["messages"][-1]["content"] + "\n"
        assert lm.tokenizer.decode(ids[:first]).endswith("<assistant>:")


def test_sft_on_chat_data_and_a_weighted_mixture_with_a_task(chat_lm, tiny_world, tmp_path):
    _, lm = chat_lm
    pairs = tmp_path / "pairs.parquet"
    pl.DataFrame(PAIRS).write_parquet(pairs)
    instructions = {
        "chat": read_instruction_rows(_jsonl(tmp_path / "chat.jsonl", CHATS)),
        "pairs": read_instruction_rows(pairs),
    }
    sentiment = load_task("resources/tasks/sentiment.yaml")
    tasks = {"sentiment": (sentiment, task_examples(tiny_world, "sentiment"))}
    cfg = Sft.from_dict(
        {
            **DEFAULT["sft"],
            "tasks": ["sentiment"],
            "methods": ["full"],
            "multitask": True,
            "steps": 2,
            "batch_size": 4,
            "examples_per_task": 4,
            "data": [{"name": "chat", "path": str(tmp_path / "chat.jsonl")}, {"name": "pairs", "path": str(pairs)}],
            "weights": {"chat": 2.0},
        }
    )
    scores, examples = run_sft(lm, {"run": "ext", "step": 0}, tasks, cfg, "full", log=lambda _: None, instructions=instructions)
    scores = pl.from_arrow(scores)
    assert sorted(set(scores["sft_data"])) == ["data:chat", "data:pairs", "multitask", "single"]
    assert set(scores["task"]) == {"sentiment"} and (scores["n"] == 4).all()

    # The mixture: a source's weight spread over its examples; without weights, uniform draws (None).
    data = {"chat": [0] * 6, "pairs": [0] * 6, "sentiment": [0] * 12}
    probs = mixture_probabilities(data, {"chat": 2.0})
    assert probs.sum() == pytest.approx(1.0)
    assert [probs[:6].sum(), probs[6:12].sum(), probs[12:].sum()] == pytest.approx([0.5, 0.25, 0.25])
    assert mixture_probabilities(data, {}) is None
    assert np.all(probs > 0)


def test_bad_sft_data_is_named(chat_lm, tmp_path):
    no_fields = _jsonl(tmp_path / "bad.jsonl", [{"question": "q", "answer": "a"}])
    with pytest.raises(
        SftDataError, match=r"bad\.jsonl: row 0: has fields \['answer', 'question'\]; expected prompt and completion"
    ):
        read_instruction_rows(no_fields)
    user_last = _jsonl(tmp_path / "user_last.jsonl", [{"messages": CHATS[0]["messages"][:2]}])
    with pytest.raises(SftDataError, match=r"row 0: the last message's role is 'user'; expected 'assistant'"):
        read_instruction_rows(user_last)

    chat = _jsonl(tmp_path / "chat.jsonl", CHATS)
    model_dir, _ = chat_lm
    cases = [
        (
            lambda c: c["sft"].update(data=[{"name": "qa", "path": str(no_fields)}]),
            r"sft\.data\[0\]: .*expected prompt and completion",
        ),
        (
            lambda c: c["sft"].update(data=[{"name": "qa", "path": str(tmp_path / "nope.jsonl")}]),
            r"sft\.data\[0\]\.path: .* does not exist",
        ),
        (
            lambda c: c["sft"].update(data=[{"name": "chat", "path": str(chat)}]),
            r"sft\.data\[0\]: chat messages need a tokenizer with a chat template; the trained runs",
        ),
        (
            lambda c: c["sft"].update(weights={"trivia": 2.0}),
            r"sft\.weights: \['trivia'\] are neither sft\.tasks nor sft\.data names",
        ),
    ]
    for edit, message in cases:
        config = copy.deepcopy(DEFAULT)
        edit(config)
        with pytest.raises(ConfigError, match=message):
            validate(config)
    # Chats with only external models whose tokenizers have a chat template: accepted.
    config = copy.deepcopy(DEFAULT)
    config.update(runs=[], external=[{"name": "chatty", "path": str(model_dir)}])
    config["sft"]["data"] = [{"name": "chat", "path": str(chat)}]
    config["fit"] = {k: v for k, v in config["fit"].items() if k not in ("selection",)}  # one run: no held-out target
    validate(config)
