from transformers import AutoTokenizer

from lmforecast.data import tokenizer as tokenizer_lib
from lmforecast.data.world import domain_documents


def test_round_trip_and_hf_format(tiny_world, tiny_tokenizer):
    tok = tokenizer_lib.load(tiny_tokenizer)
    assert tok.get_vocab_size() == 300 + 16  # the BPE, then the sentinels
    assert tokenizer_lib.eos_id(tok) == 0
    assert tokenizer_lib.sentinel_ids(tok) == list(range(300, 316))
    hf = AutoTokenizer.from_pretrained(tiny_tokenizer)
    for doc in domain_documents(tiny_world, "code", "valid") + domain_documents(tiny_world, "prose", "valid"):
        ids = tok.encode(doc).ids
        assert tok.decode(ids) == doc
        assert hf(doc)["input_ids"] == ids
    assert hf.eos_token == tokenizer_lib.EOS
    assert hf.convert_tokens_to_ids([f"<extra_id_{i}>" for i in range(16)]) == list(range(300, 316))
    assert tok.encode("a<extra_id_3>b").ids == tok.encode("a").ids + [303] + tok.encode("b").ids
    assert hf("a<extra_id_3>b")["input_ids"] == tok.encode("a<extra_id_3>b").ids


def test_training_is_deterministic(tiny_world):
    texts = domain_documents(tiny_world, "facts", "train")
    a = tokenizer_lib.train_tokenizer(texts, 300, sentinels=16)
    b = tokenizer_lib.train_tokenizer(texts, 300, sentinels=16)
    assert a.to_str() == b.to_str()
    # Sentinels come after the BPE: reserving more changes no id of ordinary text.
    c = tokenizer_lib.train_tokenizer(texts, 300, sentinels=4)
    assert all(a.encode(t).ids == c.encode(t).ids for t in texts[:20])
