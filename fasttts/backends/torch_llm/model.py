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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from fasttts.backends.torch_llm.cpu_linear import Storage, fbgemm_fp16_works, fp16_linear, fp16_pack
from fasttts.backends.torch_llm.kv_cache import KVCache
from fasttts.errors import ModelLoadError

logger = logging.getLogger(__name__)

SUPPORTED_ARCHS = ("qwen2", "llama")
HEAD_FLOAT32_ROWS = 32768  # LM-head slices up to this many rows get float32 logits in bfloat16 models
HEAD_BLOCK_BYTES = 1 << 20  # float32 bytes of LM-head rows widened at a time for those logits
HEAD_CHUNK_ROWS = 1024  # LM-head rows packed together for FBGEMM, at fixed offsets (see CausalLM.logits)


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


class RotaryEmbedding:
    """RoPE tables, one row per position, computed once in float32 like HF (then cast) and grown by
    doubling, so a forward only gathers its tokens' rows.

    Row ``p`` holds ``cos`` and a signed ``sin``: HF's ``x·cos + rotate_half(x)·sin`` with
    ``rotate_half(x) = cat(-x₂, x₁)`` equals ``x·cos + roll(x, D/2)·cat(-sin₁, sin₂)`` term for term
    (negation is exact), which three in-place-able ops compute without splitting and joining halves."""

    def __init__(self, cfg: LLMConfig) -> None:
        self.inv_freq = rope_inv_freq(cfg)
        self._tables: dict[tuple[torch.dtype, torch.device], torch.Tensor] = {}  # [P, 2, D]: cos, signed sin

    def __call__(self, positions: torch.Tensor, length: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """cos, signed sin [N, 1, D] for ``positions`` [N], all below ``length``."""
        key = (dtype, positions.device)
        table = self._tables.get(key)
        if table is None or table.shape[0] < length:
            size = max(length, 2 * table.shape[0] if table is not None else 1024)
            freqs = torch.arange(size, device=positions.device).float()[:, None] * self.inv_freq.to(positions.device)[None, :]
            emb = torch.cat((freqs, freqs), dim=-1)  # [P, D]
            half = freqs.shape[-1]
            sin = emb.sin()
            sin[:, :half].neg_()
            table = self._tables[key] = torch.stack((emb.cos(), sin), dim=1).to(dtype)
        rows = table[positions]  # [N, 2, D]
        return rows[:, :1], rows[:, 1:]


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


class FusedLinear(nn.Linear):
    """Several checkpoint linears that read the same input (q/k/v, gate/up) stacked by output rows:
    one weight pass and one kernel call per token instead of two or three. ``parts`` names them,
    in order, with their output sizes; :meth:`CausalLM.checkpoint_tensors` maps each checkpoint
    tensor onto its row slice, so checkpoints keep the official layout and load straight in."""

    def __init__(self, in_features: int, parts: dict[str, int], bias: bool) -> None:
        super().__init__(in_features, sum(parts.values()), bias=bias)
        self.parts = parts


def linear_checkpoint_tensors(prefix: str, linear: nn.Linear) -> dict[str, torch.Tensor]:
    """One linear's weight (and bias) under the checkpoint's names: a :class:`FusedLinear`'s as
    the row slices its parts fill."""
    own = {kind: t.detach() for kind, t in (("weight", linear.weight), ("bias", linear.bias)) if t is not None}
    if not isinstance(linear, FusedLinear):
        return {f"{prefix}.{kind}": t for kind, t in own.items()}
    parent = prefix.rpartition(".")[0]
    return {f"{parent}.{part}.{kind}": rows for kind, t in own.items() for part, rows in zip(linear.parts, torch.split(t, list(linear.parts.values())))}


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


# (q [B, H, D], keys [B, Hkv, L, D], values, keys per sequence [B], scale) -> [B, H·D]
DecodeAttention = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, float], torch.Tensor]


@dataclass
class Step:
    """What every layer of one forward shares, computed once per forward."""

    batch: AttnBatch
    cache: KVCache
    cos: torch.Tensor  # [N, 1, D]
    sin: torch.Tensor  # [N, 1, D], signed (see RotaryEmbedding)
    blocked: torch.Tensor | None  # eager attention: [B, 1, rep·Tq, L] bool, True = masked out
    decode: tuple[DecodeAttention, torch.Tensor] | None = None  # CausalLM.decode_attention and each sequence's key count


class Attention(nn.Module):
    def __init__(self, cfg: LLMConfig, layer: int, impl: str) -> None:
        super().__init__()
        self.layer, self.impl = layer, impl
        self.h, self.hkv, self.d = cfg.num_heads, cfg.num_kv_heads, cfg.head_dim
        self.scale = self.d**-0.5
        kv = self.hkv * self.d
        self.qkv_proj = FusedLinear(cfg.hidden_size, {"q_proj": self.h * self.d, "k_proj": kv, "v_proj": kv}, bias=cfg.qkv_bias)
        self.o_proj = nn.Linear(self.h * self.d, cfg.hidden_size, bias=cfg.o_bias)

    def forward(self, x: torch.Tensor, step: Step) -> torch.Tensor:
        n, h, hkv, d = x.shape[0], self.h, self.hkv, self.d  # x [N, C]
        qkv = self.qkv_proj(x)  # [N, (H + 2·Hkv)·D]: queries, keys, values
        qk = qkv[:, : (h + hkv) * d].view(n, h + hkv, d)
        rotated = qk.roll(d // 2, dims=-1)
        qk.mul_(step.cos).addcmul_(rotated, step.sin)  # RoPE on queries and keys together, in place
        batch = step.batch
        step.cache.write(self.layer, batch.slots, batch.positions, qkv[:, h * d :].view(n, 2, hkv, d))  # keys, values
        keys, values = step.cache.read(self.layer, batch.key_slots, batch.key_len)  # [B, Hkv, L, D]
        b, tq = n // batch.queries_per_seq, batch.queries_per_seq
        if step.decode is not None:  # one query per sequence, one call (see CausalLM.decode_attention)
            attend, lengths = step.decode
            out = attend(qkv[:, : h * d].view(n, h, d), keys, values, lengths, self.scale)
        elif self.impl == "sdpa":
            q = qkv[:, : h * d].view(b, tq, h, d).transpose(1, 2)  # [B, H, Tq, D]
            out = F.scaled_dot_product_attention(q, keys, values, attn_mask=batch.mask, enable_gqa=hkv != h)
            out = out.transpose(1, 2).reshape(n, h * d)
        else:  # as HF (scores in model dtype, softmax in float32), but each key/value head's query heads
            rep = h // hkv  # are the rows of one matmul, instead of repeating its keys and values
            q = qkv[:, : h * d].view(b, tq, hkv, rep, d).permute(0, 2, 3, 1, 4).reshape(b, hkv, rep * tq, d)
            if x.device.type == "cpu" and x.dtype != torch.float32:
                # On CPU, in float32 throughout: oneDNN's bfloat16 matmuls at these small shapes
                # take ~2x MKL's float32 ones even with the conversions (measured on Zen 5, one
                # thread, 7x64 queries against 128-1024 keys), and build a new kernel for every
                # key length, ~1.5 ms each, so on every decode step.
                q, keys, values = q.float(), keys.float(), values.float()
            scores = (q @ keys.transpose(-1, -2)).mul_(self.scale)  # [B, Hkv, rep·Tq, L]
            if step.blocked is not None:
                scores.masked_fill_(step.blocked, torch.finfo(scores.dtype).min)
            probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(q.dtype)
            out = (probs @ values).view(b, hkv, rep, tq, d).permute(0, 3, 1, 2, 4).reshape(n, h * d).to(x.dtype)
        result: torch.Tensor = self.o_proj(out)  # [N, C]
        return result


class MLP(nn.Module):
    """SwiGLU: down(silu(gate(x)) * up(x)), gate and up one fused linear."""

    def __init__(self, cfg: LLMConfig) -> None:
        super().__init__()
        i = cfg.intermediate_size
        self.gate_up_proj = FusedLinear(cfg.hidden_size, {"gate_proj": i, "up_proj": i}, bias=cfg.mlp_bias)
        self.down_proj = nn.Linear(i, cfg.hidden_size, bias=cfg.mlp_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up_proj(x).chunk(2, dim=-1)
        result: torch.Tensor = self.down_proj(F.silu(gate).mul_(up))
        return result


class DecoderLayer(nn.Module):
    def __init__(self, cfg: LLMConfig, layer: int, impl: str) -> None:
        super().__init__()
        self.input_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.self_attn = Attention(cfg, layer, impl)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.mlp = MLP(cfg)

    def forward(self, x: torch.Tensor, step: Step) -> torch.Tensor:
        # x is this forward's own (the embedding's output, then each layer's): residuals add in place
        x.add_(self.self_attn(self.input_layernorm(x), step))
        return x.add_(self.mlp(self.post_attention_layernorm(x)))


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
        # eager attention at one query per sequence in one call: the loader sets FastTTS's x86
        # kernel on CPUs that build it, eager's arithmetic but for summation order, in place of a
        # dozen ATen calls per layer and decode step (5 % of a 2-core Zen 5's batch-1 step)
        self.decode_attention: DecodeAttention | None = None
        self._head_chunks: dict[int, Storage] = {}  # chunk index -> its bfloat16 head rows packed for FBGEMM (see logits)

    @property
    def opaque_bytes(self) -> int:
        """Bytes of the packed head chunks, which are no tensors (for fasttts.checkpoint.held_bytes)."""
        rows, vocab = HEAD_CHUNK_ROWS, self.lm_head_weight.shape[0]
        return 2 * self.cfg.hidden_size * sum(min(vocab, (i + 1) * rows) - i * rows for i in self._head_chunks)

    @property
    def lm_head_weight(self) -> torch.Tensor:
        return self.model.embed_tokens.weight if self.lm_head is None else self.lm_head.weight  # [V, C]

    @property
    def activation_dtype(self) -> torch.dtype:
        """What hidden states and the KV cache are held in. Usually the weights' dtype; a bfloat16
        model whose linear kernel computes in float32 keeps its embeddings (and head) in bfloat16."""
        return self.model.norm.weight.dtype

    def checkpoint_tensors(self) -> dict[str, torch.Tensor]:
        """The model's tensors under the checkpoint's names and shapes: a fused linear's weight
        (and bias) appear as the row slices its parts fill, views that a read into them fills."""
        tensors = dict(self.state_dict())
        for prefix, module in self.named_modules():
            if isinstance(module, FusedLinear):
                for kind in ("weight", "bias"):
                    tensors.pop(f"{prefix}.{kind}", None)
                tensors.update(linear_checkpoint_tensors(prefix, module))
        return tensors

    def forward(self, tokens: torch.Tensor, batch: AttnBatch, cache: KVCache) -> torch.Tensor:
        # tokens [N] -> hidden [N, C]
        x = self.model.embed_tokens(tokens).to(self.activation_dtype)
        cos, sin = self.rotary(batch.positions, batch.key_len, x.dtype)
        decode = None
        if self.decode_attention is not None and batch.queries_per_seq == 1 and x.dtype in (torch.float32, torch.bfloat16):
            decode = (self.decode_attention, batch.positions + 1)  # a decode step attends its keys up to its own
        step = Step(batch, cache, cos, sin, None if decode else self._blocked(batch), decode)
        for layer in self.model.layers:
            x = layer(x, step)
        hidden: torch.Tensor = self.model.norm(x)
        return hidden

    def _blocked(self, batch: AttnBatch) -> torch.Tensor | None:
        """Eager attention's mask, once per forward: ``batch.mask`` negated and repeated for the
        query heads each key/value head serves (see :class:`Attention`)."""
        if self.attn_implementation != "eager" or batch.mask is None:
            return None
        b, _, tq, length = batch.mask.shape
        rep = self.cfg.num_heads // self.cfg.num_kv_heads
        return (~batch.mask).unsqueeze(2).expand(b, 1, rep, tq, length).reshape(b, 1, rep * tq, length)

    def logits(self, hidden: torch.Tensor, vocab_slice: tuple[int, int] | None = None) -> torch.Tensor:
        # hidden [B, C] -> float32 logits [B, V] (or [B, hi - lo])
        weight = self.lm_head_weight
        if vocab_slice is None:
            return (hidden.to(weight.dtype) @ weight.T).float()
        lo, hi = vocab_slice
        if weight.dtype == torch.float32 or hi - lo > HEAD_FLOAT32_ROWS:
            return (hidden.to(weight.dtype) @ weight[lo:hi].T).float()
        # bfloat16 logits carry 8 significant bits: among 8k semantic tokens the top ones tie, and
        # greedy / top-k / top-p then break ties differently. So they are computed in float32 from
        # the bfloat16 rows. On x86 CPUs the rows are packed for FBGEMM's fp16 linear (16-bit reads,
        # float32 sums) in chunks at fixed offsets, each the first time a slice needs it: 2 bytes
        # per weight kept for the rows a grammar ever reads (Spark: 12k rows, 22 MB; Orpheus: 29k,
        # 176 MB), whatever hulls a batch's slices make, and a token's logit does not depend on
        # the slice it was computed in. 4.5x faster than widening blocks (an 8192-row Spark slice
        # on one Zen 5 core: 0.35 against 1.6 ms per step).
        if weight.device.type == "cpu" and fbgemm_fp16_works():
            x, chunk = hidden.float(), HEAD_CHUNK_ROWS
            first, last = lo // chunk, -(-hi // chunk)
            parts = []
            for i in range(first, last):
                pack = self._head_chunks.get(i)
                if pack is None:
                    pack = self._head_chunks[i] = fp16_pack(weight[i * chunk : (i + 1) * chunk])
                parts.append(fp16_linear(x, pack))
            return torch.cat(parts, dim=1)[:, lo - first * chunk : hi - first * chunk]
        # Elsewhere the slice is widened to float32 through one cache-sized block of rows, reused
        # along it: float32 logits with no float32 copy of the head kept (a cached copy per window
        # held up to 1.4 GB on Orpheus). (Measured on a 2-core EPYC: as fast as reading a cached
        # float32 copy, where a fresh float32 slice per step, or a cache that thrashes over
        # Orpheus's 7 windows, takes ~6x.)
        x = hidden.float()
        out = torch.empty(x.shape[0], hi - lo, dtype=torch.float32, device=x.device)
        step = max(1, HEAD_BLOCK_BYTES // (4 * weight.shape[1]))
        block = torch.empty(min(step, hi - lo), weight.shape[1], dtype=torch.float32, device=x.device)
        for start in range(lo, hi, step):
            rows = block[: min(hi, start + step) - start]
            rows.copy_(weight[start : start + len(rows)])
            out[:, start - lo : start - lo + len(rows)] = x @ rows.T
        return out
