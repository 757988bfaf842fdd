"""Real benchmark formats as data: ARC-Easy and HellaSwag rows -> examples -> requests -> scores.

The rows below are made up, in the real formats: ARC-Easy as on the hub (allenai/ai2_arc,
ARC-Easy config), HellaSwag as in its original release's JSONL (github.com/rowanz/hellaswag).
"""

import json

import pytest
import torch
from reference import assert_scores_match_separate_sequences

from lmforecast.data import tokenizer as tokenizer_lib
from lmforecast.measure.evaluate import score_requests
from lmforecast.measure.lm import LlamaLM
from lmforecast.measure.tasks import build_requests, load_dataset_examples, load_task
from lmforecast.train.model import Llama, ModelConfig

ARC_YAML = "resources/tasks/arc_easy.yaml"
HELLASWAG_YAML = "resources/tasks/hellaswag.yaml"

ARC_ROWS = {
    "train.jsonl": [
        {
            "id": "Mercury_SC_400001",
            "question": "Which tool is best for measuring the length of a pencil?",
            "choices": {"text": ["a ruler", "a thermometer", "a balance", "a stopwatch"], "label": ["A", "B", "C", "D"]},
            "answerKey": "A",
        },
    ],
    "test.jsonl": [
        {
            "id": "ACTAAP_2009_5_1",
            "question": "What do plants take from the air to make food?",
            "choices": {"text": ["oxygen", "carbon dioxide", "nitrogen", "water vapor"], "label": ["A", "B", "C", "D"]},
            "answerKey": "B",
        },
        {
            "id": "NYSEDREGENTS_2015_4_3",
            "question": "Which object is attracted to a magnet?",
            "choices": {"text": ["a wooden spoon", "an iron nail", "a glass marble"], "label": ["1", "2", "3"]},
            "answerKey": "2",
        },
    ],
}

HELLASWAG_ROWS = {
    "hellaswag_train.jsonl": [
        {
            "ind": 4,
            "activity_label": "Making a sandwich",
            "ctx_a": "A woman lays two slices of bread on a board.",
            "ctx_b": "she",
            "ctx": "A woman lays two slices of bread on a board. she",
            "split": "train",
            "split_type": "indomain",
            "label": 2,
            "source_id": "activitynet~v_made_up_1",
            "endings": [
                "throws the bread into a river.",
                "paints the board red.",
                "spreads butter on one slice.",
                "reads a newspaper aloud.",
            ],
        },
    ],
    "hellaswag_val.jsonl": [
        {
            "ind": 12,
            "activity_label": "Home and Garden",
            "ctx_a": "[header] How to clean a kettle [title] Fill the kettle with vinegar and water.",
            "ctx_b": "",
            "ctx": "[header] How to clean a kettle [title] Fill the kettle with vinegar and water. ",
            "split": "val",
            "split_type": "zeroshot",
            "label": 1,
            "source_id": "wikihow~made_up_2",
            "endings": [
                "[step] Paint the kettle blue.",
                "Let it sit for an hour, then rinse. [substeps] Dry it with a towel.",
                "Put the kettle in the freezer.",
                "Sell the kettle online.",
            ],
        },
        {
            "ind": 24,
            "activity_label": "Roof shingle removal",
            "ctx_a": "A man is sitting on a roof.",
            "ctx_b": "he",
            "ctx": "A man is sitting on a roof. he",
            "split": "val",
            "split_type": "indomain",
            "label": 3,
            "source_id": "activitynet~v_made_up_3",
            "endings": [
                "is using wrap to wrap a pair of skis.",
                "is ripping level tiles off.",
                "is holding a cube.",
                "starts pulling up roofing on a roof.",
            ],
        },
    ],
}


def write_rows(directory, files):
    directory.mkdir(parents=True, exist_ok=True)
    for name, rows in files.items():
        (directory / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
    return directory


def _scores_match_separate_sequences(requests, tiny_tokenizer):
    """score_requests vs every choice as its own sequence, one plain forward pass each (float64)."""
    tok = tokenizer_lib.load(tiny_tokenizer)
    torch.manual_seed(0)
    lm = LlamaLM(Llama(ModelConfig(vocab_size=tok.get_vocab_size(), d_model=32, n_layers=2, n_heads=2, seq_len=64)).double(), tok)
    assert_scores_match_separate_sequences(lm, requests, score_requests(lm, requests))


def test_arc_easy_rows_become_examples_requests_and_scores(tmp_path, tiny_tokenizer):
    data = write_rows(tmp_path / "arc", ARC_ROWS)
    examples = load_dataset_examples(ARC_YAML, data_dir=data, cache_dir=tmp_path / "cache")
    assert examples == [
        {
            "id": "arc_easy-train-Mercury_SC_400001",
            "split": "train",
            "fields": {"question": "Which tool is best for measuring the length of a pencil?"},
            "choices": ["a ruler", "a thermometer", "a balance", "a stopwatch"],
            "gold": 0,
        },
        {
            "id": "arc_easy-test-ACTAAP_2009_5_1",
            "split": "test",
            "fields": {"question": "What do plants take from the air to make food?"},
            "choices": ["oxygen", "carbon dioxide", "nitrogen", "water vapor"],
            "gold": 1,
        },
        {
            "id": "arc_easy-test-NYSEDREGENTS_2015_4_3",
            "split": "test",
            "fields": {"question": "Which object is attracted to a magnet?"},
            "choices": ["a wooden spoon", "an iron nail", "a glass marble"],
            "gold": 1,
        },  # answerKey "2" of labels 1-3
    ]
    task = load_task(ARC_YAML)
    requests = build_requests(task, examples, ["question"], [0, 1])
    assert [(r.example, r.shots) for r in requests] == [
        ("arc_easy-test-ACTAAP_2009_5_1", 0),
        ("arc_easy-test-ACTAAP_2009_5_1", 1),
        ("arc_easy-test-NYSEDREGENTS_2015_4_3", 0),
        ("arc_easy-test-NYSEDREGENTS_2015_4_3", 1),
    ]
    assert requests[0].context == "Question: What do plants take from the air to make food?\nAnswer:"
    assert requests[3].context == (
        "Question: Which tool is best for measuring the length of a pencil?\nAnswer: a ruler\n\n"
        "Question: Which object is attracted to a magnet?\nAnswer:"
    )
    assert requests[3].continuations == (" a wooden spoon", " an iron nail", " a glass marble")
    _scores_match_separate_sequences(requests, tiny_tokenizer)


def test_hellaswag_rows_become_examples_requests_and_scores(tmp_path, tiny_tokenizer):
    data = write_rows(tmp_path / "hellaswag", HELLASWAG_ROWS)
    examples = load_dataset_examples(HELLASWAG_YAML, data_dir=data, cache_dir=tmp_path / "cache")
    assert [x["id"] for x in examples] == ["hellaswag-train-4", "hellaswag-validation-12", "hellaswag-validation-24"]
    wikihow, activitynet = examples[1], examples[2]
    # lm-eval's preprocessing: "[title]" becomes a sentence break, other [tags] go, double spaces collapse.
    assert wikihow["fields"] == {"query": "Home and Garden: How to clean a kettle. Fill the kettle with vinegar and water."}
    assert wikihow["choices"] == [
        " Paint the kettle blue.",
        "Let it sit for an hour, then rinse. Dry it with a towel.",
        "Put the kettle in the freezer.",
        "Sell the kettle online.",
    ]
    assert wikihow["gold"] == 1
    assert activitynet["fields"] == {"query": "Roof shingle removal: A man is sitting on a roof. He"}
    assert activitynet["gold"] == 3 and activitynet["split"] == "validation"
    task = load_task(HELLASWAG_YAML)
    requests = build_requests(task, examples, ["query"], [0, 1])
    assert requests[2].context == "Roof shingle removal: A man is sitting on a roof. He"
    assert requests[2].continuations[3] == " starts pulling up roofing on a roof."
    assert requests[3].context.startswith(
        "Making a sandwich: A woman lays two slices of bread on a board. She spreads butter on one slice.\n\n"
    )
    _scores_match_separate_sequences(requests, tiny_tokenizer)


def test_hub_string_labels_load_and_hidden_test_labels_are_an_error(tmp_path):
    # On the hub (Rowan/hellaswag) label is a string, "" in the test split; the original test file has none.
    hub = {name: [{**r, "label": str(r["label"])} for r in rows] for name, rows in HELLASWAG_ROWS.items()}
    hub["hellaswag_test.jsonl"] = [{**hub["hellaswag_val.jsonl"][1], "split": "test", "label": ""}]
    data = write_rows(tmp_path / "hub", hub)
    examples = load_dataset_examples(HELLASWAG_YAML, data_dir=data, cache_dir=tmp_path / "cache")
    assert [x["gold"] for x in examples] == [2, 1, 3]
    with pytest.raises(ValueError):
        load_dataset_examples(HELLASWAG_YAML, data_dir=data, splits=["test"], cache_dir=tmp_path / "cache")
    original = {"hellaswag_test.jsonl": [{k: v for k, v in HELLASWAG_ROWS["hellaswag_val.jsonl"][1].items() if k != "label"}]}
    data = write_rows(tmp_path / "original", original)
    with pytest.raises(ValueError, match=r"hellaswag_test.jsonl: row 0 lacks .*'label'"):
        load_dataset_examples(HELLASWAG_YAML, data_dir=data, splits=["test"], cache_dir=tmp_path / "cache")
