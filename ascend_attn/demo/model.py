"""A Llama-shaped decoder (RMSNorm, RoPE, GQA attention, SwiGLU) in plain PyTorch, with pluggable attention.

Weights are seeded random, or loaded from a local Hugging Face Llama directory (config.json + *.safetensors).
``forward`` runs a packed batch of tokens and hands attention to a callback, so the same weights serve both the
paged engine (ascend_attn ops) and the plain-SDPA reference.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass
class LlamaConfig:
    vocab_size: int = 512
    hidden_size: int = 256
    intermediate_size: int = 704
    num_hidden_layers: int = 4
    num_attention_heads: int = 8
    num_key_value_heads: int = 2
    head_dim: int = 32
    rms_norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    tie_word_embeddings: bool = False

    @classmethod
    def from_hf(cls, path: Path) -> LlamaConfig:
        raw = json.loads((path / "config.json").read_text())
        fields = {k: raw[k] for k in cls.__dataclass_fields__ if k in raw}
        fields.setdefault("head_dim", raw["hidden_size"] // raw["num_attention_heads"])
        fields.setdefault("num_key_value_heads", raw["num_attention_heads"])
        return cls(**fields)


# Attention callback: (layer, q [tokens, heads, dim], k, v [tokens, kv_heads, dim]) -> out [tokens, heads, dim]
Attention = Callable[[int, Tensor, Tensor, Tensor], Tensor]


class LlamaModel:
    """Weights and the forward pass. Parameter names follow Hugging Face's LlamaForCausalLM."""

    def __init__(self, config: LlamaConfig, weights: dict[str, Tensor]):
        self.config = config
        self.w = weights
        inv_freq = 1.0 / config.rope_theta ** (torch.arange(0, config.head_dim, 2).float() / config.head_dim)
        self.inv_freq = inv_freq

    @classmethod
    def random(cls, config: LlamaConfig, seed: int = 0, dtype: torch.dtype = torch.float32) -> LlamaModel:
        gen = torch.Generator().manual_seed(seed)
        c, w = config, {}

        def init(name, *shape, std=0.02):
            w[name] = (torch.randn(*shape, generator=gen) * std).to(dtype)

        init("model.embed_tokens.weight", c.vocab_size, c.hidden_size, std=1.0)
        for i in range(c.num_hidden_layers):
            p = f"model.layers.{i}."
            init(p + "self_attn.q_proj.weight", c.num_attention_heads * c.head_dim, c.hidden_size, std=0.08)
            init(p + "self_attn.k_proj.weight", c.num_key_value_heads * c.head_dim, c.hidden_size, std=0.08)
            init(p + "self_attn.v_proj.weight", c.num_key_value_heads * c.head_dim, c.hidden_size, std=0.08)
            init(p + "self_attn.o_proj.weight", c.hidden_size, c.num_attention_heads * c.head_dim, std=0.08)
            init(p + "mlp.gate_proj.weight", c.intermediate_size, c.hidden_size, std=0.08)
            init(p + "mlp.up_proj.weight", c.intermediate_size, c.hidden_size, std=0.08)
            init(p + "mlp.down_proj.weight", c.hidden_size, c.intermediate_size, std=0.08)
            w[p + "input_layernorm.weight"] = torch.ones(c.hidden_size, dtype=dtype)
            w[p + "post_attention_layernorm.weight"] = torch.ones(c.hidden_size, dtype=dtype)
        w["model.norm.weight"] = torch.ones(c.hidden_size, dtype=dtype)
        init("lm_head.weight", c.vocab_size, c.hidden_size, std=0.08)
        return cls(config, w)

    @classmethod
    def from_pretrained(cls, path: str | Path, dtype: torch.dtype = torch.float32) -> LlamaModel:
        """Loads a local Hugging Face Llama checkpoint directory (needs the ``safetensors`` package)."""
        try:
            from safetensors.torch import load_file
        except ImportError as e:
            raise RuntimeError("--model needs the safetensors package: pip install safetensors") from e
        path = Path(path)
        files = sorted(path.glob("*.safetensors"))
        if not (path / "config.json").is_file() or not files:
            raise RuntimeError(f"{path} is not a Hugging Face model directory (config.json and *.safetensors)")
        config = LlamaConfig.from_hf(path)
        weights = {}
        for f in files:
            weights.update({k: v.to(dtype) for k, v in load_file(str(f)).items()})
        if config.tie_word_embeddings or "lm_head.weight" not in weights:
            weights["lm_head.weight"] = weights["model.embed_tokens.weight"]
        return cls(config, weights)

    def to(self, device: str | torch.device) -> LlamaModel:
        self.w = {k: v.to(device) for k, v in self.w.items()}
        self.inv_freq = self.inv_freq.to(device)
        return self

    @property
    def dtype(self) -> torch.dtype:
        return self.w["model.embed_tokens.weight"].dtype

    def _rms_norm(self, x: Tensor, weight: Tensor) -> Tensor:
        xf = x.float()
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.config.rms_norm_eps)
        return xf.to(x.dtype) * weight

    def _rope(self, x: Tensor, positions: Tensor) -> Tensor:
        """Rotates x [tokens, heads, dim] (halves convention, as Hugging Face Llama) by each token's position."""
        freqs = positions.float()[:, None] * self.inv_freq[None, :]
        emb = torch.cat([freqs, freqs], dim=-1)
        cos, sin = emb.cos()[:, None, :], emb.sin()[:, None, :]
        half = x.shape[-1] // 2
        rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
        return (x.float() * cos + rotated.float() * sin).to(x.dtype)

    def forward(self, tokens: Tensor, positions: Tensor, attention: Attention) -> Tensor:
        """tokens, positions int64 [n] (a packed batch) -> logits fp32 [n, vocab]."""
        c, w = self.config, self.w
        x = w["model.embed_tokens.weight"][tokens]
        for i in range(c.num_hidden_layers):
            p = f"model.layers.{i}."
            h = self._rms_norm(x, w[p + "input_layernorm.weight"])
            q = (h @ w[p + "self_attn.q_proj.weight"].T).view(-1, c.num_attention_heads, c.head_dim)
            k = (h @ w[p + "self_attn.k_proj.weight"].T).view(-1, c.num_key_value_heads, c.head_dim)
            v = (h @ w[p + "self_attn.v_proj.weight"].T).view(-1, c.num_key_value_heads, c.head_dim)
            q, k = self._rope(q, positions), self._rope(k, positions)
            a = attention(i, q, k, v).reshape(-1, c.num_attention_heads * c.head_dim)
            x = x + a @ w[p + "self_attn.o_proj.weight"].T
            h = self._rms_norm(x, w[p + "post_attention_layernorm.weight"])
            gate = F.silu(h @ w[p + "mlp.gate_proj.weight"].T) * (h @ w[p + "mlp.up_proj.weight"].T)
            x = x + gate @ w[p + "mlp.down_proj.weight"].T
        return (self._rms_norm(x, w["model.norm.weight"]) @ w["lm_head.weight"].T).float()


def sdpa_logits(model: LlamaModel, tokens: list[int]) -> torch.Tensor:
    """Logits ``[vocab]`` after ``tokens``, computed with plain PyTorch SDPA over the whole sequence."""
    device = model.w["model.embed_tokens.weight"].device

    def attention(layer, q, k, v):
        out = F.scaled_dot_product_attention(
            q.transpose(0, 1)[None], k.transpose(0, 1)[None], v.transpose(0, 1)[None], is_causal=True, enable_gqa=True
        )
        return out[0].transpose(0, 1)

    ids = torch.tensor(tokens, device=device)
    return model.forward(ids, torch.arange(len(tokens), device=device), attention)[-1]


def sdpa_generate(model: LlamaModel, prompt: list[int], max_new_tokens: int) -> list[int]:
    """Greedy decoding with plain PyTorch SDPA, recomputing the whole sequence each step (the reference)."""
    tokens = list(prompt)
    for _ in range(max_new_tokens):
        tokens.append(int(sdpa_logits(model, tokens).argmax()))
    return tokens[len(prompt) :]
