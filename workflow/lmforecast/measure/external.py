"""External checkpoints: a Hugging Face model directory evaluated by the same scorer as our own.

The directory holds a causal LM (`AutoModelForCausalLM`) and its tokenizer (`AutoTokenizer`),
as `save_pretrained` writes them. Each model is scored with its own tokenizer: token counts
and nats per token then differ between tokenizers, bits per byte (of the same UTF-8 text)
does not depend on them, so it is the column to compare external and trained models on.
The adapters give the model and tokenizer the interface the scorer uses (hidden states and
an output head; `encode(...).ids`). Imports transformers: only evaluate jobs of external
models pay its start-up.
"""

from pathlib import Path
from types import SimpleNamespace

import torch


class HFTokenizer:
    """A transformers tokenizer behind the `tokenizers.Tokenizer` calls the scorer makes.

    No special tokens are added to the text (lm-eval's convention); the scorer prefixes
    EOS (or BOS) as the start-of-context token itself.
    """

    def __init__(self, tok):
        self.tok = tok

    def encode(self, text):
        return SimpleNamespace(ids=self.tok(text, add_special_tokens=False)["input_ids"])

    def encode_batch(self, texts):
        return [SimpleNamespace(ids=ids) for ids in self.tok(list(texts), add_special_tokens=False)["input_ids"]]

    def token_to_id(self, token):
        """Id of a token of the vocabulary, None for one it lacks (as tokenizers.Tokenizer)."""
        return self.tok.get_vocab().get(token)


class HFScorer(torch.nn.Module):
    """A transformers causal LM with our Llama's scoring interface: hidden(ids, attn_mask, position_ids) and lm_head."""

    def __init__(self, hf):
        super().__init__()
        self.hf = hf
        self.lm_head = hf.get_output_embeddings()

    def hidden(self, input_ids, attn_mask=None, position_ids=None):
        """Final (normed) hidden states; attn_mask: boolean (B, 1, T, T), True = may attend, as our Llama takes it."""
        if attn_mask is not None:
            # transformers passes a 4D mask through to attention as an additive mask (eager and sdpa alike)
            dtype = self.lm_head.weight.dtype
            attn_mask = torch.zeros(attn_mask.shape, dtype=dtype).masked_fill(~attn_mask, torch.finfo(dtype).min)
        out = self.hf.get_decoder()(input_ids=input_ids, attention_mask=attn_mask, position_ids=position_ids)
        return out.last_hidden_state

    def forward(self, input_ids, attn_mask=None, position_ids=None):
        return self.lm_head(self.hidden(input_ids, attn_mask, position_ids))


def load(directory):
    """(model, tokenizer, start-of-context id, max_len) of an HF model directory; errors name the directory."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    directory = Path(directory)
    if not (directory / "config.json").is_file():
        raise ValueError(f"{directory}: no config.json; expected a Hugging Face model directory (save_pretrained)")
    try:
        tok = AutoTokenizer.from_pretrained(directory)
    except (OSError, ValueError) as e:
        raise ValueError(f"{directory}: no tokenizer AutoTokenizer can load ({e}); an external model is scored "
                         "with its own tokenizer, saved beside it") from e
    hf = AutoModelForCausalLM.from_pretrained(directory)
    hf.eval()
    start = tok.eos_token_id if tok.eos_token_id is not None else tok.bos_token_id
    if start is None:
        raise ValueError(f"{directory}: the tokenizer has neither an EOS nor a BOS token to start contexts with")
    # The scoring window: the model's context length, or the tokenizer's if that is shorter.
    max_len = min(hf.config.max_position_embeddings, tok.model_max_length)
    return HFScorer(hf), HFTokenizer(tok), start, max_len
