"""A Llama-style decoder, written out so it can be read top to bottom (as in nanoGPT).

Parameter names, initialisation and arithmetic follow transformers' LlamaForCausalLM
(RMSNorm in float32, rotate-half RoPE, SwiGLU MLP, tied embeddings), and checkpoints
are written as `config.json` + `model.safetensors` in that format, so every checkpoint
loads with `AutoModelForCausalLM.from_pretrained`. tests/test_model.py checks that the
logits equal transformers' to 1e-5. We do not import transformers in the jobs because
it costs ~5 s of start-up per process on a 2-core machine, times ~100 jobs per sweep.
"""

import json
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from lmforecast.settings import Size


@dataclass(frozen=True, kw_only=True)
class ModelConfig(Size):
    """A size (its shape and parameter count) and what the tokenizer and training add to it."""

    vocab_size: int
    seq_len: int = 128
    eos_token_id: int = 0
    rope_theta: float = 10000.0
    rms_norm_eps: float = 1e-6

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    def to_hf(self) -> dict:
        """The config.json of transformers' LlamaForCausalLM for this model."""
        return {
            "architectures": ["LlamaForCausalLM"],
            "model_type": "llama",
            "vocab_size": self.vocab_size,
            "hidden_size": self.d_model,
            "intermediate_size": self.intermediate_size,
            "num_hidden_layers": self.n_layers,
            "num_attention_heads": self.n_heads,
            "num_key_value_heads": self.n_heads,
            "head_dim": self.head_dim,
            "hidden_act": "silu",
            "max_position_embeddings": self.seq_len,
            "rms_norm_eps": self.rms_norm_eps,
            "rope_theta": self.rope_theta,
            "rope_parameters": {"rope_type": "default", "rope_theta": self.rope_theta},
            "tie_word_embeddings": True,
            "attention_bias": False,
            "mlp_bias": False,
            "initializer_range": 0.02,
            "bos_token_id": self.eos_token_id,
            "eos_token_id": self.eos_token_id,
            "dtype": "float32",
        }

    @classmethod
    def from_hf(cls, hf: dict) -> "ModelConfig":
        unsupported = {
            "model_type": hf.get("model_type") != "llama",
            "num_key_value_heads": hf.get("num_key_value_heads", hf["num_attention_heads"]) != hf["num_attention_heads"],
            "tie_word_embeddings": not hf.get("tie_word_embeddings", False),
            "rope_scaling": bool(hf.get("rope_scaling")),
        }
        bad = [k for k, v in unsupported.items() if v]
        if bad:
            raise ValueError(f"config.json: the built-in Llama supports only lmforecast's own checkpoints; unsupported: {bad}")
        return cls(
            vocab_size=hf["vocab_size"],
            d_model=hf["hidden_size"],
            n_layers=hf["num_hidden_layers"],
            n_heads=hf["num_attention_heads"],
            ffn_ratio=hf["intermediate_size"] / hf["hidden_size"],
            seq_len=hf["max_position_embeddings"],
            eos_token_id=hf["eos_token_id"],
            rope_theta=hf.get("rope_parameters", {}).get("rope_theta", hf.get("rope_theta", 10000.0)),
            rms_norm_eps=hf["rms_norm_eps"],
        )


def n_params(cfg: ModelConfig) -> dict:
    """Exact parameter counts: total (tied embedding counted once) and non-embedding."""
    nonembed = cfg.n_params_nonembed
    return {"n_params": nonembed + cfg.vocab_size * cfg.d_model, "n_params_nonembed": nonembed}


def flops_per_token(cfg: ModelConfig) -> float:
    """Training FLOPs per token: 6 * (non-embedding params + output head) + 12 * L * d * T.

    The PaLM rule (Chowdhery et al. 2022, appendix B; nanoGPT's estimate_mfu); we count the (tied) output projection because
    at these vocabulary-to-width ratios it is a large share of the matmuls.
    """
    matmul_params = n_params(cfg)["n_params_nonembed"] + cfg.vocab_size * cfg.d_model
    return 6.0 * matmul_params + 12.0 * cfg.n_layers * cfg.d_model * cfg.seq_len


class RMSNorm(nn.Module):
    def __init__(self, d, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x):
        dtype = x.dtype
        x = x.float()
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x.to(dtype)


def rotate_half(x):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        d = cfg.d_model
        self.n_heads, self.head_dim = cfg.n_heads, cfg.head_dim
        self.q_proj = nn.Linear(d, d, bias=False)
        self.k_proj = nn.Linear(d, d, bias=False)
        self.v_proj = nn.Linear(d, d, bias=False)
        self.o_proj = nn.Linear(d, d, bias=False)

    def forward(self, x, cos, sin, attn_mask):
        B, T, _ = x.shape
        q, k, v = (p(x).view(B, T, self.n_heads, self.head_dim).transpose(1, 2) for p in (self.q_proj, self.k_proj, self.v_proj))
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        if attn_mask is None:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        return self.o_proj(y.transpose(1, 2).reshape(B, T, -1))


class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        d, f = cfg.d_model, cfg.intermediate_size
        self.gate_proj = nn.Linear(d, f, bias=False)
        self.up_proj = nn.Linear(d, f, bias=False)
        self.down_proj = nn.Linear(f, d, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.input_layernorm = RMSNorm(cfg.d_model, cfg.rms_norm_eps)
        self.self_attn = Attention(cfg)
        self.post_attention_layernorm = RMSNorm(cfg.d_model, cfg.rms_norm_eps)
        self.mlp = MLP(cfg)

    def forward(self, x, cos, sin, attn_mask):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, attn_mask)
        return x + self.mlp(self.post_attention_layernorm(x))


class Llama(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.model = nn.Module()  # the `model.` prefix of HF parameter names
        self.model.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.model.layers = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.model.norm = RMSNorm(cfg.d_model, cfg.rms_norm_eps)
        self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        self.lm_head.weight = self.model.embed_tokens.weight
        inv_freq = 1.0 / (cfg.rope_theta ** (torch.arange(0, cfg.head_dim, 2, dtype=torch.int64).float() / cfg.head_dim))
        self.register_buffer("inv_freq", inv_freq, persistent=False)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def rope(self, positions):
        """cos, sin of shape (*positions.shape, head_dim); in float32 whatever the model dtype, as transformers."""
        freqs = positions.float()[..., None] * self.inv_freq.float()
        emb = torch.cat((freqs, freqs), dim=-1)
        return emb.cos(), emb.sin()

    def forward(self, input_ids, attn_mask=None, position_ids=None):
        """Logits (B, T, V). attn_mask: optional boolean (B, 1, T, T), True = may attend.

        position_ids: optional (B, T) rotary positions (default 0..T-1), so that packed
        sequences (several continuations after one shared context) see their own positions.
        """
        return self.lm_head(self.hidden(input_ids, attn_mask, position_ids))

    def hidden(self, input_ids, attn_mask=None, position_ids=None):
        """The final normed hidden states (B, T, d): scorers apply lm_head only where a token is scored."""
        x = self.model.embed_tokens(input_ids)
        if position_ids is None:
            cos, sin = self.rope(torch.arange(input_ids.shape[1], device=input_ids.device))
        else:
            cos, sin = (c[:, None] for c in self.rope(position_ids))  # (B, 1, T, head_dim): broadcast over heads
        cos, sin = cos.to(x.dtype), sin.to(x.dtype)  # as transformers: a bf16 model rotates in bf16 (fp32: a no-op)
        for block in self.model.layers:
            x = block(x, cos, sin, attn_mask)
        return self.model.norm(x)


def save_model(model: Llama, directory):
    save_weights(model.cfg, model.state_dict(), directory)


def save_weights(cfg: ModelConfig, state: dict, directory):
    """A model's weights (a state dict, tied output head saved once) and config as an HF checkpoint."""
    directory = Path(directory)
    state = {k: v.detach().cpu().contiguous() for k, v in state.items() if k != "lm_head.weight"}
    save_file(state, str(directory / "model.safetensors"), metadata={"format": "pt"})
    (directory / "config.json").write_text(json.dumps(cfg.to_hf(), indent=2, sort_keys=True) + "\n")


def load_model(directory) -> Llama:
    directory = Path(directory)
    cfg = ModelConfig.from_hf(json.loads((directory / "config.json").read_text()))
    model = Llama(cfg)
    missing, unexpected = model.load_state_dict(load_file(str(directory / "model.safetensors")), strict=False)
    if set(missing) - {"lm_head.weight"} or unexpected:
        raise ValueError(f"{directory}/model.safetensors: missing {missing}, unexpected {unexpected}")
    return model
