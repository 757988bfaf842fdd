"""Tiny models and settings the tests share: a transformers Llama saved as a published checkpoint, and
the training settings of the pre-training tests."""

import torch

from lmforecast.data import tokenizer as tokenizer_lib

# A pretrain job's `training` section for the tiny runs (as config.py passes it to the rule)
TRAINING = {
    "seq_len": 32,
    "batch_size": 4,
    "schedule": "cosine",
    "warmup_frac": 0.1,
    "min_lr_frac": 0.1,
    "weight_decay": 0.1,
    "grad_clip": 1.0,
    "checkpoints": 2,
    "log_every": 1000,
}


def hf_llama_dir(tok_dir, directory, hidden=32, layers=2, seed=0):
    """A tiny transformers LlamaForCausalLM saved by save_pretrained, with the project tokenizer beside it
    (as an external model's directory); weights drawn with torch seed `seed`. Returns the directory."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = tokenizer_lib.load(tok_dir)
    eos = tokenizer_lib.eos_id(tok)
    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=tok.get_vocab_size(),
        hidden_size=hidden,
        intermediate_size=3 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=64,
        tie_word_embeddings=True,
        bos_token_id=eos,
        eos_token_id=eos,
        rms_norm_eps=1e-6,
    )
    LlamaForCausalLM(cfg).save_pretrained(directory)
    tokenizer_lib.save_hf(tok, directory, model_max_length=64)
    return directory
