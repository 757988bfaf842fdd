"""The language-model interface of the scorer: one class for our checkpoints and for external models.

An `LM` is a causal LM and its tokenizer as the scorer sees them (in the spirit of
lm-evaluation-harness's `LM`):

- `encode(text)`, `encode_batch(texts)`: token ids, no special tokens added;
  `token_to_id(token)`: a vocabulary token's id, None for one it lacks;
- `start_id`: the token every scored sequence starts with (EOS, or BOS);
  `max_len`: the scoring window, in predicted tokens;
- `hidden(input_ids, attn_mask=None, position_ids=None)`: final normed hidden states (B, T, d),
  attn_mask boolean (B, 1, T, T) with True = may attend, position_ids (B, T);
  `lm_head`: the output head, hidden states -> logits (the scorer applies it only where a
  token is scored);
- `model`: the underlying torch module (SFT fine-tunes it; `with_model` puts a tuned copy
  behind the same tokenizer).

Its scoring entry points, shared by every implementation, are named as lm-eval names them:
`loglikelihood(requests)` for multiple-choice questions and `loglikelihood_rolling(documents)`
for held-out text; both run measure/scoring.py's batched scorer.

Implementations: `LlamaLM`, our checkpoints (train/model.py's Llama and the `tokenizers`
tokenizer saved beside it), and `HFLM`, a Hugging Face model directory. `load_lm` loads either.
"""

import dataclasses
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from lmforecast.measure.scoring import encode_choices, encode_pair, group_logprobs, span_logprobs

if TYPE_CHECKING:  # for the annotations only: transformers costs seconds to import
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerBase


class LM(ABC):
    """A causal LM and its tokenizer (see the module docstring); implementations are dataclasses with a `model` field."""

    model: torch.nn.Module
    start_id: int
    max_len: int

    @abstractmethod
    def encode(self, text: str) -> list[int]: ...

    @abstractmethod
    def encode_batch(self, texts) -> list[list[int]]: ...

    @abstractmethod
    def token_to_id(self, token: str) -> int | None: ...

    @abstractmethod
    def hidden(self, input_ids, attn_mask=None, position_ids=None) -> torch.Tensor: ...

    @property
    @abstractmethod
    def lm_head(self) -> torch.nn.Module: ...

    def place(self, precision: str = "fp32") -> "LM":
        """The model on the GPU when there is one (else left on the CPU), in bfloat16 if precision is bf16."""
        if torch.cuda.is_available():
            self.model.to("cuda")
        if precision == "bf16":
            self.model.to(torch.bfloat16)
        return self

    def with_model(self, model) -> "LM":
        """The same LM with another module (a fine-tuned copy of `self.model`)."""
        return dataclasses.replace(self, model=model)

    def loglikelihood(self, requests):
        """Per (context, continuations) request: per continuation, (sum of log p, token count, all tokens greedy).

        Tokenized as lm-eval does (scoring.encode_choices); each request's context is run once for all its
        continuations. A context may be a tuple, one per continuation (lm-eval's multiple-input tasks).
        """
        return group_logprobs(
            self,
            [
                encode_choices(self, context, continuations)
                if isinstance(context, str)
                else [encode_pair(self, c, cont) for c, cont in zip(context, continuations, strict=True)]
                for context, continuations in requests
            ],
        )

    def loglikelihood_rolling(self, documents):
        """Per document, the (sum of log p, token count) of each of its windows, in order.

        A document is scored as start_id + its tokens, in windows of max_len predicted tokens, each
        conditioned only on its own earlier tokens. Per window, not summed per document as lm-eval's:
        domain losses add up all of a domain's windows in one sum, whose order (and so rounding) this keeps.
        """
        sequences, owner = [], []
        for d, ids in enumerate(self.encode_batch(documents)):
            ids = [self.start_id] + ids
            for s in range(0, len(ids) - 1, self.max_len):
                sequences.append(ids[s : s + self.max_len + 1])
                owner.append(d)
        windows = [[] for _ in documents]
        for d, (lp, n, _) in zip(owner, span_logprobs(self, sequences, [1] * len(sequences))):
            windows[d].append((lp, n))
        return windows


@dataclass
class LlamaLM(LM):
    """One of our checkpoints: train/model.py's Llama and its `tokenizers.Tokenizer`; contexts start with EOS."""

    model: torch.nn.Module
    tokenizer: "Tokenizer"
    start_id: int = dataclasses.field(init=False)
    max_len: int = dataclasses.field(init=False)

    def __post_init__(self):
        from lmforecast.data.tokenizer import eos_id

        self.start_id, self.max_len = eos_id(self.tokenizer), self.model.cfg.seq_len

    @classmethod
    def load(cls, directory) -> "LlamaLM":
        """A checkpoint directory, verified against its manifest first (a truncated file is named, never used)."""
        from lmforecast.data import tokenizer as tokenizer_lib
        from lmforecast.train.checkpoint import verify
        from lmforecast.train.model import load_model

        verify(directory)
        return cls(load_model(directory), tokenizer_lib.load(directory))

    def encode(self, text):
        return self.tokenizer.encode(text).ids

    def encode_batch(self, texts):
        return [enc.ids for enc in self.tokenizer.encode_batch(texts)]

    def token_to_id(self, token):
        return self.tokenizer.token_to_id(token)

    def hidden(self, input_ids, attn_mask=None, position_ids=None):
        return self.model.hidden(input_ids, attn_mask, position_ids)

    @property
    def lm_head(self):
        return self.model.lm_head


@dataclass
class HFLM(LM):
    """A Hugging Face model directory: `AutoModelForCausalLM` and `AutoTokenizer`, as `save_pretrained` writes them.

    Each model is scored with its own tokenizer: token counts and nats per token then differ
    between tokenizers, bits per byte (of the same UTF-8 text) does not depend on them, so it
    is the column to compare external and trained models on. No special tokens are added to
    the text (lm-eval's convention); contexts start with EOS, or BOS if there is no EOS.
    Imports transformers: only evaluate jobs of external models pay its start-up.
    """

    model: torch.nn.Module
    tokenizer: "PreTrainedTokenizerBase"
    start_id: int
    max_len: int

    @classmethod
    def load(cls, directory) -> "HFLM":
        from transformers import AutoModelForCausalLM, AutoTokenizer

        directory = Path(directory)
        if not (directory / "config.json").is_file():
            raise ValueError(f"{directory}: no config.json; expected a Hugging Face model directory (save_pretrained)")
        try:
            tok = AutoTokenizer.from_pretrained(directory)
        except (OSError, ValueError) as e:
            raise ValueError(
                f"{directory}: no tokenizer AutoTokenizer can load ({e}); an external model is scored "
                "with its own tokenizer, saved beside it"
            ) from e
        model = AutoModelForCausalLM.from_pretrained(directory)
        model.eval()
        start = tok.eos_token_id if tok.eos_token_id is not None else tok.bos_token_id
        if start is None:
            raise ValueError(f"{directory}: the tokenizer has neither an EOS nor a BOS token to start contexts with")
        # The scoring window: the model's context length, or the tokenizer's if that is shorter.
        return cls(model, tok, start, min(model.config.max_position_embeddings, tok.model_max_length))

    def encode(self, text):
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def encode_batch(self, texts):
        return self.tokenizer(list(texts), add_special_tokens=False)["input_ids"]

    def token_to_id(self, token):
        # get_vocab, not convert_tokens_to_ids: that maps a missing token to the unknown token's id
        return self.tokenizer.get_vocab().get(token)

    def hidden(self, input_ids, attn_mask=None, position_ids=None):
        if attn_mask is not None:
            # transformers passes a 4D mask through to attention as an additive mask (eager and sdpa alike)
            dtype = self.lm_head.weight.dtype
            attn_mask = torch.zeros(attn_mask.shape, dtype=dtype, device=attn_mask.device).masked_fill(
                ~attn_mask, torch.finfo(dtype).min
            )
        out = self.model.get_decoder()(input_ids=input_ids, attention_mask=attn_mask, position_ids=position_ids)
        return out.last_hidden_state

    @property
    def lm_head(self):
        return self.model.get_output_embeddings()


def load_lm(directory, external: bool = False) -> LM:
    """An external Hugging Face model directory (HFLM) or one of our checkpoints (LlamaLM); errors name the directory."""
    return HFLM.load(directory) if external else LlamaLM.load(directory)
