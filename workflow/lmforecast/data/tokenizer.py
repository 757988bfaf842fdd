"""The tokenizer: a byte-level BPE trained on the domains' pre-training text, or a Hugging Face
tokenizer directory, saved in HF format either way.

The saved directory loads with `transformers.AutoTokenizer` (PreTrainedTokenizerFast);
inside the workflow we load `tokenizer.json` with the `tokenizers` library directly,
which is the same tokenizer without the start-up cost of importing transformers. Its EOS
(the document separator) is the one tokenizer_config.json names, whatever it is called.
"""

import json
from dataclasses import dataclass
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


def save_hf(tok, directory, model_max_length: int, special: dict | None = None):
    """Write tokenizer.json plus the two small files transformers reads beside it.

    special: the special tokens' names (eos_token, bos_token, ...); default: EOS for each, as GPT-2's.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tok.save(str(directory / "tokenizer.json"))
    extra = [SENTINEL.format(i) for i in range(len(sentinel_ids(tok)))]
    special = special or {"bos_token": EOS, "eos_token": EOS, "unk_token": EOS}
    special = {**special, "additional_special_tokens": extra}
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": model_max_length, **special}
    (directory / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")
    (directory / "special_tokens_map.json").write_text(json.dumps(special, indent=2) + "\n")


HF_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
# What a Hugging Face tokenizer directory holds, one of them at least (AutoTokenizer converts the others).
HF_TOKENIZER_FILES = ("tokenizer.json", "vocab.json", "tokenizer.model", "spiece.model", "sentencepiece.bpe.model")


@dataclass(frozen=True)
class Loaded:
    """A saved tokenizer: the `tokenizers.Tokenizer` (its methods are this object's) and its EOS's name."""

    backend: Tokenizer
    eos_token: str

    def __getattr__(self, name):
        if name == "backend":  # not set yet (unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.backend, name)


def load(directory) -> Loaded:
    directory = Path(directory)
    config_path = directory / "tokenizer_config.json"
    config = json.loads(config_path.read_text()) if config_path.is_file() else {}
    return Loaded(Tokenizer.from_file(str(directory / "tokenizer.json")), _token_name(config.get("eos_token")) or EOS)


def _token_name(token):
    return token.get("content") if isinstance(token, dict) else token


def eos_id(tok) -> int:
    return tok.token_to_id(getattr(tok, "eos_token", EOS))


def import_hf(directory, sentinels: int) -> tuple[Tokenizer, dict]:
    """A Hugging Face tokenizer directory as a `tokenizers.Tokenizer` and its special tokens' names.

    Read by `transformers.AutoTokenizer` (tokenizer.json, vocab + merges, or SentencePiece, converted
    to a fast tokenizer). Its post-processor is dropped: documents are separated by EOS here, and a
    BOS that it would add to every encoded text would be counted as text. Missing sentinels are
    appended, as for a trained BPE.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise ValueError(f"tokenizer.path: {str(directory)!r} is not a directory; expected a Hugging Face tokenizer directory")
    if not any((directory / name).is_file() for name in HF_TOKENIZER_FILES):
        raise ValueError(
            f"tokenizer.path: {str(directory)!r} has no tokenizer files; expected one of {list(HF_TOKENIZER_FILES)}"
            " (as save_pretrained writes them)"
        )
    from transformers import AutoTokenizer

    try:
        hf = AutoTokenizer.from_pretrained(str(directory))
    except Exception as e:  # transformers raises OSError, ValueError, TypeError... depending on what is missing
        raise ValueError(f"tokenizer.path: {str(directory)!r}: AutoTokenizer cannot load it ({type(e).__name__}: {e})") from e
    if not hf.is_fast:
        raise ValueError(f"tokenizer.path: {str(directory)!r}: no fast tokenizer (tokenizer.json) can be made from it")
    if hf.eos_token is None:
        raise ValueError(
            f"tokenizer.path: {str(directory)!r} names no EOS token (eos_token in tokenizer_config.json); "
            "expected one: it separates the documents"
        )
    tok = Tokenizer.from_str(hf.backend_tokenizer.to_str())
    spec = json.loads(tok.to_str())
    if spec.get("post_processor") is not None:
        spec["post_processor"] = None
        tok = Tokenizer.from_str(json.dumps(spec))
    missing = [SENTINEL.format(i) for i in range(sentinels) if tok.token_to_id(SENTINEL.format(i)) is None]
    tok.add_special_tokens(missing)
    names = ("eos_token", "bos_token", "unk_token", "pad_token")
    special = {k: str(getattr(hf, k)) for k in names if getattr(hf, k) is not None}
    return tok, special


def sentinel_ids(tok) -> list[int]:
    """Ids of <extra_id_0>, <extra_id_1>, ... in order (empty for a tokenizer without them)."""
    ids = []
    while (i := tok.token_to_id(SENTINEL.format(len(ids)))) is not None:
        ids.append(i)
    return ids


def file_hash(directory) -> str:
    """sha256 of tokenizer.json: the token store's manifest records which tokenizer made it."""
    import hashlib

    return hashlib.sha256((Path(directory) / "tokenizer.json").read_bytes()).hexdigest()
