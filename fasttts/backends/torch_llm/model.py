"""A small pure-torch decoder-only LM that reads Hugging Face Qwen2 and Llama checkpoints as released.

Reference: transformers' ``modeling_qwen2.py`` / ``modeling_llama.py`` (4.57) and
``modeling_rope_utils.py`` (``default`` and ``llama3`` RoPE). Module and parameter names mirror
the HF ones, so ``model.state_dict()`` keys equal the checkpoint's tensor names one to one and the
strict loader (:mod:`fasttts.backends.torch_llm.loader`) can compare them directly.

Unlike HF, attention reads and writes a slot-based KV cache (:mod:`.kv_cache`), so one forward
can prefill a chunk of one sequence or decode one token for many sequences of different lengths.

Shapes: B batch, T tokens, H query heads, Hkv key/value heads, D head_dim, C hidden, L keys.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from fasttts.errors import ModelLoadError

logger = logging.getLogger(__name__)

SUPPORTED_ARCHS = ("qwen2", "llama")
HEAD_FLOAT32_ROWS = 32768  # LM-head slices up to this many rows get float32 logits in bfloat16 models
HEAD_BLOCK_BYTES = 1 << 20  # float32 bytes of LM-head rows widened at a time for those logits


# ----------------------------------------------------------------------------- config
@dataclass(frozen=True)
class LLMConfig:
    """The fields of an HF ``config.json`` this model needs (HF key names noted where different)."""

    model_type: str  # "qwen2" | "llama"
    vocab_size: int
    hidden_size: int
    num_layers: int  # num_hidden_layers
    num_heads: int  # num_attention_heads
    num_kv_heads: int  # num_key_value_heads
    head_dim: int
    intermediate_size: int
    rms_norm_eps: float
    rope_theta: float
    rope_scaling: dict[str, Any] | None
    max_position_embeddings: int
    tie_word_embeddings: bool
    qkv_bias: bool  # Qwen2 always; Llama when attention_bias
    o_bias: bool  # Llama attention_bias only
    mlp_bias: bool
    torch_dtype: str | None = None

    @classmethod
    def from_hf_dict(cls, cfg: dict[str, Any]) -> LLMConfig:
        model_type = cfg.get("model_type")
        if model_type not in SUPPORTED_ARCHS:
            raise ModelLoadError(f"unsupported LLM model_type {model_type!r}; expected one of {SUPPORTED_ARCHS}")
        if cfg.get("hidden_act", "silu") != "silu":
            raise ModelLoadError(f"unsupported hidden_act {cfg.get('hidden_act')!r}; only silu")
        if model_type == "qwen2" and cfg.get("use_sliding_window", False):
            raise ModelLoadError("Qwen2 use_sliding_window=true is not supported")
        heads = cfg["num_attention_heads"]
        attention_bias = bool(cfg.get("attention_bias", False))
        return cls(
            model_type=model_type,
            vocab_size=cfg["vocab_size"],
            hidden_size=cfg["hidden_size"],
            num_layers=cfg["num_hidden_layers"],
            num_heads=heads,
            num_kv_heads=cfg.get("num_key_value_heads") or heads,
            head_dim=cfg.get("head_dim") or cfg["hidden_size"] // heads,
            intermediate_size=cfg["intermediate_size"],
            rms_norm_eps=cfg.get("rms_norm_eps", 1e-6),
            rope_theta=float(cfg.get("rope_theta", 10000.0)),
            rope_scaling=cfg.get("rope_scaling"),
            max_position_embeddings=cfg.get("max_position_embeddings", 32768),
            tie_word_embeddings=bool(cfg.get("tie_word_embeddings", model_type == "qwen2")),
            qkv_bias=model_type == "qwen2" or attention_bias,
            o_bias=model_type == "llama" and attention_bias,
            mlp_bias=model_type == "llama" and bool(cfg.get("mlp_bias", False)),
            torch_dtype=cfg.get("torch_dtype") or cfg.get("dtype"),
        )

    @classmethod
    def from_dir(cls, model_dir: str | Path) -> LLMConfig:
        path = Path(model_dir) / "config.json"
        if not path.is_file():
            raise ModelLoadError(f"LLM directory {model_dir} has no config.json")
        return cls.from_hf_dict(json.loads(path.read_text()))


# ----------------------------------------------------------------------------- rotary embeddings
def rope_inv_freq(cfg: LLMConfig) -> torch.Tensor:
    """Inverse frequencies [D/2] in float32, HF ``default`` or ``llama3`` RoPE."""
    d = cfg.head_dim
    inv_freq = 1.0 / (cfg.rope_theta ** (torch.arange(0, d, 2, dtype=torch.int64, device="cpu").float() / d))
    scaling = cfg.rope_scaling or {}
    rope_type = scaling.get("rope_type", scaling.get("type", "default"))
    if rope_type == "default":
        return inv_freq
    if rope_type != "llama3":
        raise ModelLoadError(f"unsupported rope_scaling type {rope_type!r}; expected default or llama3")
    # Llama 3.1 frequency-dependent scaling: long wavelengths / factor, short kept, smooth between.
    factor, low, high = scaling["factor"], scaling["low_freq_factor"], scaling["high_freq_factor"]
    old_ctx = scaling["original_max_position_embeddings"]
    low_wavelen, high_wavelen = old_ctx / low, old_ctx / high
    wavelen = 2 * math.pi / inv_freq
    scaled = torch.where(wavelen > low_wavelen, inv_freq / factor, inv_freq)
    smooth = (old_ctx / wavelen - low) / (high - low)
    smoothed = (1 - smooth) * scaled / factor + smooth * scaled
    is_medium = ~(wavelen < high_wavelen) * ~(wavelen > low_wavelen)
    return torch.where(is_medium, smoothed, scaled)


class RotaryEmbedding(nn.Module):
    """cos/sin tables for arbitrary positions, computed in float32 like HF, then cast."""

    def __init__(self, cfg: LLMConfig) -> None:
        super().__init__()
        # A plain attribute, not a buffer: it is not in checkpoints and survives meta-device init.
        self.inv_freq = rope_inv_freq(cfg)

    def forward(self, positions: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        # positions [N] -> cos, sin [N, D]
        if self.inv_freq.device != positions.device:
            self.inv_freq = self.inv_freq.to(positions.device)
        freqs = positions.float()[:, None] * self.inv_freq[None, :]  # [N, D/2]
        emb = torch.cat((freqs, freqs), dim=-1)
        return emb.cos().to(dtype), emb.sin().to(dtype)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    # x [N, heads, D], cos/sin [N, D]
    return x * cos[:, None] + rotate_half(x) * sin[:, None]


# ----------------------------------------------------------------------------- blocks
class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        x = x.float()
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x.to(dtype)


@dataclass
class AttnBatch:
    """Where this forward's tokens live in the KV cache, shared by all layers.

    Tokens are flattened to N = sum of per-sequence new tokens. Prefill: one sequence, N tokens
    at positions ``start..start+N``. Decode: N sequences, one token each.
    """

    slots: torch.Tensor  # [N] cache slot of each token
    positions: torch.Tensor  # [N] absolute position of each token
    key_slots: torch.Tensor | slice  # [B] slot of each attending sequence (a slice when consecutive)
    key_len: int  # L = keys attended (max over the batch)
    mask: torch.Tensor | None  # [B, 1, Tq, L] bool, True = attend
    queries_per_seq: int  # Tq: N == B * Tq


class Attention(nn.Module):
    def __init__(self, cfg: LLMConfig, layer: int, impl: str) -> None:
        super().__init__()
        self.layer, self.impl = layer, impl
        self.h, self.hkv, self.d = cfg.num_heads, cfg.num_kv_heads, cfg.head_dim
        self.q_proj = nn.Linear(cfg.hidden_size, self.h * self.d, bias=cfg.qkv_bias)
        self.k_proj = nn.Linear(cfg.hidden_size, self.hkv * self.d, bias=cfg.qkv_bias)
        self.v_proj = nn.Linear(cfg.hidden_size, self.hkv * self.d, bias=cfg.qkv_bias)
        self.o_proj = nn.Linear(self.h * self.d, cfg.hidden_size, bias=cfg.o_bias)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, batch: AttnBatch, cache: Any) -> torch.Tensor:
        n = x.shape[0]  # x [N, C]
        q = apply_rope(self.q_proj(x).view(n, self.h, self.d), cos, sin)  # [N, H, D]
        k = apply_rope(self.k_proj(x).view(n, self.hkv, self.d), cos, sin)  # [N, Hkv, D]
        v = self.v_proj(x).view(n, self.hkv, self.d)
        cache.write(self.layer, batch.slots, batch.positions, k, v)
        keys, values = cache.read(self.layer, batch.key_slots, batch.key_len)  # [B, Hkv, L, D]
        b, tq = n // batch.queries_per_seq, batch.queries_per_seq
        q = q.view(b, tq, self.h, self.d).transpose(1, 2)  # [B, H, Tq, D]
        if self.impl == "sdpa":
            out = F.scaled_dot_product_attention(q, keys, values, attn_mask=batch.mask, enable_gqa=self.hkv != self.h)
        else:  # eager, as HF: scores in model dtype, softmax in float32
            rep = self.h // self.hkv
            keys, values = keys.repeat_interleave(rep, dim=1), values.repeat_interleave(rep, dim=1)
            scores = (q @ keys.transpose(-1, -2)) / math.sqrt(self.d)  # [B, H, Tq, L]
            if batch.mask is not None:
                scores = scores.masked_fill(~batch.mask, torch.finfo(scores.dtype).min)
            out = torch.softmax(scores, dim=-1, dtype=torch.float32).to(q.dtype) @ values
        return self.o_proj(out.transpose(1, 2).reshape(n, self.h * self.d))  # [N, C]


class MLP(nn.Module):
    """SwiGLU: down(silu(gate(x)) * up(x))."""

    def __init__(self, cfg: LLMConfig) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(cfg.hidden_size, cfg.intermediate_size, bias=cfg.mlp_bias)
        self.up_proj = nn.Linear(cfg.hidden_size, cfg.intermediate_size, bias=cfg.mlp_bias)
        self.down_proj = nn.Linear(cfg.intermediate_size, cfg.hidden_size, bias=cfg.mlp_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class DecoderLayer(nn.Module):
    def __init__(self, cfg: LLMConfig, layer: int, impl: str) -> None:
        super().__init__()
        self.input_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.self_attn = Attention(cfg, layer, impl)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.mlp = MLP(cfg)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, batch: AttnBatch, cache: Any) -> torch.Tensor:
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, batch, cache)
        return x + self.mlp(self.post_attention_layernorm(x))


class DecoderStack(nn.Module):
    """HF's ``model.*``: embeddings, layers, final norm."""

    def __init__(self, cfg: LLMConfig, impl: str) -> None:
        super().__init__()
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.layers = nn.ModuleList(DecoderLayer(cfg, i, impl) for i in range(cfg.num_layers))
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)


# ----------------------------------------------------------------------------- model
class CausalLM(nn.Module):
    """Qwen2ForCausalLM / LlamaForCausalLM equivalent over a slot KV cache.

    :meth:`forward` returns final hidden states; :meth:`logits` applies the LM head, optionally
    to a vocabulary slice ``[lo, hi)`` only (``hidden @ W[lo:hi].T``), which is all a step needs
    when the constraint allows just one range.
    """

    def __init__(self, cfg: LLMConfig, attn_implementation: str = "eager") -> None:
        super().__init__()
        if attn_implementation == "flash_attention_2":
            logger.info("attn_implementation flash_attention_2 is not built into the torch backend; using sdpa")
            attn_implementation = "sdpa"
        if attn_implementation not in ("eager", "sdpa"):
            raise ValueError(f"attn_implementation must be eager, sdpa or flash_attention_2, not {attn_implementation!r}")
        self.cfg, self.attn_implementation = cfg, attn_implementation
        self.model = DecoderStack(cfg, attn_implementation)
        self.rotary = RotaryEmbedding(cfg)
        self.lm_head = None if cfg.tie_word_embeddings else nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False)
        self.weight_format = "float32"  # what the decoder's linear weights are stored in; the loader sets it

    @property
    def lm_head_weight(self) -> torch.Tensor:
        return self.model.embed_tokens.weight if self.lm_head is None else self.lm_head.weight  # [V, C]

    def forward(self, tokens: torch.Tensor, batch: AttnBatch, cache: Any) -> torch.Tensor:
        # tokens [N] -> hidden [N, C]
        x = self.model.embed_tokens(tokens)
        cos, sin = self.rotary(batch.positions, x.dtype)
        for layer in self.model.layers:
            x = layer(x, cos, sin, batch, cache)
        return self.model.norm(x)

    def logits(self, hidden: torch.Tensor, vocab_slice: tuple[int, int] | None = None) -> torch.Tensor:
        # hidden [B, C] -> float32 logits [B, V] (or [B, hi - lo])
        weight = self.lm_head_weight
        if vocab_slice is None:
            return (hidden @ weight.T).float()
        lo, hi = vocab_slice
        if weight.dtype == torch.float32 or hi - lo > HEAD_FLOAT32_ROWS:
            return (hidden @ weight[lo:hi].T).float()
        # bfloat16 logits carry 8 significant bits: among 8k semantic tokens the top ones tie, and
        # greedy / top-k / top-p then break ties differently. So the slice is widened to float32
        # a cache-sized block of rows at a time, each block used and dropped: float32 logits with
        # no float32 copy of the head kept (a copy per window held up to 1.4 GB on Orpheus).
        # (Measured on a 2-core EPYC: as fast as reading a cached float32 copy, where a fresh
        # float32 slice per step, or a cache that thrashes over Orpheus's 7 windows, takes ~6x.)
        x = hidden.float()
        out = torch.empty(x.shape[0], hi - lo, dtype=torch.float32, device=x.device)
        step = max(1, HEAD_BLOCK_BYTES // (4 * weight.shape[1]))
        block = torch.empty(min(step, hi - lo), weight.shape[1], dtype=torch.float32, device=x.device)
        for start in range(lo, hi, step):
            rows = block[: min(hi, start + step) - start]
            rows.copy_(weight[start : start + len(rows)])
            out[:, start - lo : start - lo + len(rows)] = x @ rows.T
        return out
