"""A byte-level BPE tokenizer trained on the world's pre-training text, saved in HF format.

The saved directory loads with `transformers.AutoTokenizer` (PreTrainedTokenizerFast);
inside the workflow we load `tokenizer.json` with the `tokenizers` library directly,
which is the same tokenizer without the start-up cost of importing transformers.
"""

import json
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

EOS = "<|endoftext|>"  # also the document separator and the start-of-context token, as in GPT-2
SENTINEL = "<extra_id_{}>"  # span corruption's sentinels, named as T5's


def train_tokenizer(texts, vocab_size: int, sentinels: int) -> Tokenizer:
    """BPE of vocab_size tokens (EOS = id 0 included), then `sentinels` special tokens appended after it.

    As T5's extra_ids, the sentinels come after the learned vocabulary, so that the BPE and the
    ids of ordinary text do not depend on how many are reserved.
    """
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    tok.add_special_tokens([SENTINEL.format(i) for i in range(sentinels)])
    return tok


def save_hf(tok: Tokenizer, directory, model_max_length: int):
    """Write tokenizer.json plus the two small files transformers reads beside it."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tok.save(str(directory / "tokenizer.json"))
    extra = [SENTINEL.format(i) for i in range(len(sentinel_ids(tok)))]
    special = {"bos_token": EOS, "eos_token": EOS, "unk_token": EOS, "additional_special_tokens": extra}
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": model_max_length, **special}
    (directory / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")
    (directory / "special_tokens_map.json").write_text(json.dumps(special, indent=2) + "\n")


HF_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


def load(directory) -> Tokenizer:
    return Tokenizer.from_file(str(Path(directory) / "tokenizer.json"))


def eos_id(tok: Tokenizer) -> int:
    return tok.token_to_id(EOS)


def sentinel_ids(tok: Tokenizer) -> list[int]:
    """Ids of <extra_id_0>, <extra_id_1>, ... in order (empty for a tokenizer without them)."""
    ids = []
    while (i := tok.token_to_id(SENTINEL.format(len(ids)))) is not None:
        ids.append(i)
    return ids
