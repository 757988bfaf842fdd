import re
from dataclasses import replace
from pathlib import Path

import yaml

from lmforecast.data.world import DOMAINS, TASK_DOMAIN, TASKS, domain_documents, read_documents, task_examples, write_domains

TASK_DIR = Path(__file__).resolve().parents[1] / "resources" / "tasks"


def test_four_domains_and_four_tasks_each_tied_to_a_domain():
    assert len(DOMAINS) >= 4 and len(TASKS) >= 4
    assert set(TASK_DOMAIN.values()) == set(DOMAINS)


def test_generation_is_deterministic_and_seeded(tiny_world):
    for domain in DOMAINS:
        assert domain_documents(tiny_world, domain, "train") == domain_documents(tiny_world, domain, "train")
    for task in TASKS:
        assert task_examples(tiny_world, task) == task_examples(tiny_world, task)
    other = replace(tiny_world, seed=1)
    assert domain_documents(other, "facts", "train") != domain_documents(tiny_world, "facts", "train")


def test_train_and_valid_documents_differ(tiny_world):
    for domain in DOMAINS:
        assert set(domain_documents(tiny_world, domain, "train")).isdisjoint(domain_documents(tiny_world, domain, "valid"))


def test_domain_files_hold_each_split_in_order(tiny_world, tmp_path):
    write_domains(tiny_world, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{d}.jsonl" for d in DOMAINS)
    for domain in DOMAINS:
        for split in ("train", "valid"):
            assert read_documents(tmp_path / f"{domain}.jsonl", split) == domain_documents(tiny_world, domain, split)
        assert read_documents(tmp_path / f"{domain}.jsonl", "valid", 2) == domain_documents(tiny_world, domain, "valid")[:2]


def test_every_task_has_two_prompts_and_disjoint_splits(tiny_world):
    for task in TASKS:
        spec = yaml.safe_load((TASK_DIR / f"{task}.yaml").read_text())
        assert spec["task"] == task and spec["domain"] == TASK_DOMAIN[task]
        assert len(spec["prompts"]) >= 2
        examples = task_examples(tiny_world, task)
        by_split = {s: [x for x in examples if x["split"] == s] for s in ("sft", "eval")}
        assert by_split["sft"] and by_split["eval"]
        sft_keys = {repr(sorted(x["fields"].items())) for x in by_split["sft"]}
        assert not any(repr(sorted(x["fields"].items())) in sft_keys for x in by_split["eval"])
        assert len({x["id"] for x in examples}) == len(examples)
        for x in examples:
            for prompt in spec["prompts"].values():
                prompt.format(**x["fields"])  # every template renders every example


def test_fact_qa_splits_by_entity_and_answers_are_the_pretraining_facts(tiny_world):
    examples = task_examples(tiny_world, "fact_qa")
    entities = {s: {x["fields"]["entity"] for x in examples if x["split"] == s} for s in ("sft", "eval")}
    assert entities["sft"].isdisjoint(entities["eval"])
    corpus = " ".join(domain_documents(replace(tiny_world, train_docs=2000), "facts", "train"))
    for x in examples[:10]:
        answer = x["choices"][x["gold"]]
        assert f"{x['fields']['prefix']} {answer}." in corpus


def test_fact_qa_sft_entities_sets_the_split(tiny_world):
    """SFT on the first sft_entities entities (half by default); every other entity's facts are eval questions."""
    for sft_entities, expected in ((None, tiny_world.n_entities // 2), (2, 2)):
        spec = replace(tiny_world, sft_entities=sft_entities, sft_examples=1000, eval_examples=1000)
        examples = task_examples(spec, "fact_qa")
        entities = {s: {x["fields"]["entity"] for x in examples if x["split"] == s} for s in ("sft", "eval")}
        assert len(entities["sft"]) == expected and len(entities["eval"]) == tiny_world.n_entities - expected
        assert sum(x["split"] == "eval" for x in examples) == 3 * (tiny_world.n_entities - expected)


def test_qa_entities_facts_also_occur_as_questions_and_no_eval_question_does(tiny_world):
    """The first qa_entities (SFT) entities' facts occur as Q/A sentences too; the eval entities' only as statements."""
    spec = replace(tiny_world, sft_entities=4, qa_entities=2, train_docs=400, sft_examples=1000, eval_examples=1000)
    corpus = " ".join(domain_documents(spec, "facts", "train"))
    asked = set(re.findall(r"Q: .*? A: \w+\.", corpus))
    examples = task_examples(spec, "fact_qa")
    qa_entities = list(dict.fromkeys(x["fields"]["entity"] for x in examples))[:2]  # the first SFT entities
    for x in examples:
        qa = f"Q: {x['fields']['question']} A: {x['choices'][x['gold']]}."
        assert (qa in asked) == (x["fields"]["entity"] in qa_entities)
    assert len(asked) == 6  # each of their 3 facts
    # without qa_entities the facts text is the statements alone, as before the option existed
    assert "Q: " not in " ".join(domain_documents(tiny_world, "facts", "train"))


def test_gold_answers_are_correct(tiny_world):
    for x in task_examples(tiny_world, "arith_mc"):
        f = x["fields"]
        assert int(x["choices"][x["gold"]]) == (f["a"] + f["b"] if f["op"] == "+" else f["a"] - f["b"])
    for x in task_examples(tiny_world, "var_track"):
        env = {}
        for statement in x["fields"]["program"].split(" ; "):
            var, value = statement.split(" = ")
            env[var] = env[value] if value in env else int(value)
        assert str(env[x["fields"]["var"]]) == x["choices"][x["gold"]]
    for x in task_examples(tiny_world, "sentiment"):
        positive = len(re.findall(r"wonderful|brilliant|great|charming|superb|delightful|moving|fresh", x["fields"]["review"]))
        assert x["choices"][x["gold"]] == ("positive" if positive >= 2 else "negative")


def test_arith_mc_holds_every_distinct_problem_once_and_the_config_check_counts_them(tiny_world):
    from lmforecast.config import _available_examples
    from lmforecast.data.world import ARITH_PROBLEMS

    world = replace(tiny_world, sft_examples=100, eval_examples=500)
    examples = task_examples(world, "arith_mc")
    keys = {(x["fields"]["a"], x["fields"]["op"], x["fields"]["b"]) for x in examples}
    assert len(keys) == len(examples) == ARITH_PROBLEMS  # 100 SFT, the other 292 eval: no more exist
    assert _available_examples(world, "arith_mc", "eval") == ARITH_PROBLEMS - 100
    assert sum(x["split"] == "eval" for x in examples) == ARITH_PROBLEMS - 100


def test_a_reviews_adjectives_agree_with_its_label(tiny_world):
    for doc in domain_documents(tiny_world, "prose", "train"):
        for review, label in re.findall(r"(The .*?\.) Overall, it was (\w+)\.", doc):
            positive = len(re.findall(r"wonderful|brilliant|great|charming|superb|delightful|moving|fresh", review))
            assert positive == (3 if label == "positive" else 0)
