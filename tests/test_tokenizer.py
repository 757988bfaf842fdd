from transformers import AutoTokenizer

from lmforecast import tokenizer as tokenizer_lib
from lmforecast.world import domain_documents


def test_round_trip_and_hf_format(tiny_world, tiny_tokenizer):
    tok = tokenizer_lib.load(tiny_tokenizer)
    assert tok.get_vocab_size() == 300
    assert tokenizer_lib.eos_id(tok) == 0
    hf = AutoTokenizer.from_pretrained(tiny_tokenizer)
    for doc in domain_documents(tiny_world, "code", "valid") + domain_documents(tiny_world, "prose", "valid"):
        ids = tok.encode(doc).ids
        assert tok.decode(ids) == doc
        assert hf(doc)["input_ids"] == ids
    assert hf.eos_token == tokenizer_lib.EOS


def test_training_is_deterministic(tiny_world):
    texts = domain_documents(tiny_world, "facts", "train")
    a = tokenizer_lib.train_tokenizer(texts, 300)
    b = tokenizer_lib.train_tokenizer(texts, 300)
    assert a.to_str() == b.to_str()
