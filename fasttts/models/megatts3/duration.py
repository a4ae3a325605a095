"""MegaTTS3 duration LM: an autoregressive predictor of each phone's frame count, prompted with
the reference's phones and durations so the target speaks at the speaker's pace.

Must equal ``ARDurPredictor`` of ``tts/modules/ar_dur/ar_dur_predictor.py`` (phone encoder
``RelTransformerEncoder``, decoder ``RotTransformerDecoderLayer`` × N of ``rot_transformer.py``,
``ar_mse`` Softplus head) as ``make_dur_prompt`` and ``dur_pred`` of ``tts/frontend_function.py``
run it; state-dict names are the official ones. The prompt is run teacher-forced in one pass (the
reference steps through it one code at a time: the same numbers).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from fasttts.models.megatts3.config import DurationConfig
from fasttts.models.megatts3.layers import RelTransformerEncoder, phone_positions

ROPE_BASE = 10000.0


# ----------------------------------------------------------------------------- blocks
def rotate_half(x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """``RotaryEmbeddings``: x [B, H, T, D] at positions [T]; cos/sin tables repeated over halves."""
    d = x.shape[-1]
    theta = torch.pow(ROPE_BASE, -torch.arange(0, d, 2, dtype=torch.float, device=x.device) / d)
    m = positions.to(x.device).float()[:, None] * theta[None]
    m = torch.cat([m, m], dim=-1)
    half = d // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return m.cos() * x + m.sin() * rotated


class RotSelfAttention(nn.Module):
    """``RotMultiheadAttention`` as the decoder uses it: fused ``in_proj_weight``, no biases."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads, self.head_dim = heads, dim // heads
        self.in_proj_weight = nn.Parameter(torch.zeros(3 * dim, dim))
        self.out_proj = nn.Linear(dim, dim, bias=False)

    def forward(self, x: torch.Tensor, positions: torch.Tensor, cache: list[torch.Tensor]) -> torch.Tensor:
        """x [B, T, C] at ``positions``; ``cache`` [keys, values] (rotated, [B, H, L, D]) is extended."""
        b, t, c = x.shape
        q, k, v = (y.view(b, t, self.heads, self.head_dim).transpose(1, 2) for y in F.linear(x, self.in_proj_weight).chunk(3, dim=-1))
        q = rotate_half(q * self.head_dim**-0.5, positions)
        k = rotate_half(k, positions)
        if cache:
            k, v = torch.cat([cache[0], k], 2), torch.cat([cache[1], v], 2)
        cache[:] = [k, v]
        scores = q @ k.transpose(-2, -1)
        if t > 1:  # a prompt pass: causal within the new tokens
            past = k.shape[2] - t
            future = torch.ones(t, k.shape[2], dtype=torch.bool, device=x.device).triu(past + 1)
            scores = scores.masked_fill(future, -1e8)
        out = F.softmax(scores.float(), dim=-1).type_as(scores) @ v
        return cast(torch.Tensor, self.out_proj(out.transpose(1, 2).reshape(b, t, c)))


class FFN(nn.Module):
    """``TransformerFFNLayer`` with kernel 1 (LEFT padding is then a no-op): conv → GELU → linear."""

    def __init__(self, dim: int, hidden: int, bias: bool) -> None:
        super().__init__()
        self.ffn_1 = nn.ModuleDict({"1": nn.Conv1d(dim, hidden, 1, bias=bias)})
        self.ffn_2 = nn.Linear(hidden, dim, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h: torch.Tensor = self.ffn_1["1"](x.transpose(1, 2))
        return cast(torch.Tensor, self.ffn_2(F.gelu(h.transpose(1, 2))))


class DecoderLayer(nn.Module):
    """``RotDecSALayer`` (pre-LN unless ``post_ln``), wrapped as ``layers.N.op``."""

    def __init__(self, dim: int, heads: int, bias: bool, post_ln: bool) -> None:
        super().__init__()
        self.layer_norm1 = nn.LayerNorm(dim)
        self.self_attn = RotSelfAttention(dim, heads)
        self.layer_norm2 = nn.LayerNorm(dim)
        self.ffn = FFN(dim, 4 * dim, bias)
        self.post_ln = post_ln

    def forward(self, x: torch.Tensor, positions: torch.Tensor, cache: list[torch.Tensor]) -> torch.Tensor:
        if self.post_ln:
            x = self.layer_norm1(x + self.self_attn(x, positions, cache))
            return cast(torch.Tensor, self.layer_norm2(x + self.ffn(x)))
        x = x + self.self_attn(self.layer_norm1(x), positions, cache)
        return x + cast(torch.Tensor, self.ffn(self.layer_norm2(x)))


class Wrapped(nn.Module):
    """A decoder layer under the official ``op`` name."""

    def __init__(self, layer: DecoderLayer) -> None:
        super().__init__()
        self.op = layer


@dataclass
class DurationState:
    """The decoder's key/value caches after the reference prompt, and where it stopped."""

    caches: list[list[torch.Tensor]]
    length: int
    last_code: int

    def copy(self) -> DurationState:
        return DurationState([list(c) for c in self.caches], self.length, self.last_code)


# ----------------------------------------------------------------------------- model
class DurationLM(nn.Module):
    """``ARDurPredictor`` for inference."""

    def __init__(self, cfg: DurationConfig) -> None:
        super().__init__()
        self.cfg = cfg
        h, d = cfg.enc_hidden, cfg.dec_hidden
        self.encoder = RelTransformerEncoder(
            cfg.phone_vocab, h, cfg.ffn_hidden, cfg.enc_heads, cfg.enc_layers, cfg.enc_kernel, prenet=cfg.enc_prenet, pre_ln=cfg.enc_pre_ln
        )
        if cfg.use_char:  # present in the checkpoint, unused at inference (no characters are fed)
            self.char_encoder = RelTransformerEncoder(
                cfg.char_dict_size, h, cfg.ffn_hidden, cfg.enc_heads, cfg.enc_layers, cfg.enc_kernel, prenet=cfg.enc_prenet, pre_ln=cfg.enc_pre_ln
            )
        self.char_empty_embed = nn.Embedding(1, h)
        self.ling_label_embed_layers = nn.ModuleDict({k: nn.Embedding(s + 3, h, padding_idx=0) for k, s in zip(cfg.ling_labels, cfg.ling_label_sizes)})
        self.enc_proj = nn.Linear(h, d)
        self.code_emb = nn.Embedding(cfg.code_size + 2, d, padding_idx=0)
        if cfg.use_pos_embed:
            self.embed_positions = nn.Module()
            self.embed_positions.register_buffer("_float_tensor", torch.zeros(1))
        if not cfg.use_post_ln:
            self.layer_norm = nn.LayerNorm(d)
        self.layers = nn.ModuleList(Wrapped(DecoderLayer(d, cfg.dec_heads, cfg.lm_bias, cfg.use_post_ln)) for _ in range(cfg.dec_layers))
        self.project_out_dim: nn.Sequential | nn.Linear
        if cfg.model_type == "ar_mse":
            self.project_out_dim = nn.Sequential(nn.Linear(d, 1), nn.Softplus())
        else:
            self.project_out_dim = nn.Linear(d, cfg.code_size + 1)

    @property
    def start_code(self) -> int:
        return self.cfg.code_size + 1

    def phone_states(self, phone: torch.Tensor, tone: torch.Tensor) -> torch.Tensor:
        """``forward_ling_encoder`` without characters: [1, N] phones and tones → [1, N', D]
        (padding phones dropped)."""
        nonpad = (phone > 0).float()[..., None]
        other = self.ling_label_embed_layers["tone"](tone) + phone_positions(phone.shape[1], self.cfg.enc_hidden, phone.device)
        x = self.encoder(phone, other_embeds=other * nonpad) * nonpad
        states: torch.Tensor = self.enc_proj(x)
        return states[phone > 0][None][:, : self.cfg.max_tokens]

    def _absolute(self, steps: torch.Tensor, dim: int) -> torch.Tensor:
        """``SinusoidalPositionalEmbedding`` (padding index 0) at 1-based steps (``use_pos_embed``)."""
        half = dim // 2
        freq = torch.exp(torch.arange(half, dtype=torch.float) * -(torch.log(torch.tensor(10000.0)) / (half - 1)))
        ang = steps.float()[:, None] * freq[None]
        return torch.cat([ang.sin(), ang.cos()], dim=1)

    def _run(self, codes: torch.Tensor, ling: torch.Tensor, positions: torch.Tensor, caches: list[list[torch.Tensor]], steps: torch.Tensor) -> torch.Tensor:
        x = self.code_emb(codes) + ling
        if self.cfg.use_pos_embed:
            x = x + self._absolute(steps, x.shape[-1]).to(x)
        for layer, cache in zip(cast(Sequence[Wrapped], self.layers), caches):
            x = layer.op(x, positions, cache)
        if not self.cfg.use_post_ln:
            x = self.layer_norm(x)
        return cast(torch.Tensor, self.project_out_dim(x))

    def _code(self, out: torch.Tensor) -> int:
        if self.cfg.model_type == "ar_mse":
            return int(torch.round(out[0, -1, 0]))
        return int(out[0, -1].argmax())

    @torch.inference_mode()
    def prompt(self, phone: torch.Tensor, tone: torch.Tensor, codes: torch.Tensor) -> DurationState:
        """Teacher-forced pass over the reference: inputs (start, c₀ … c_{N−2}) with phones 0…N−1
        (``make_dur_prompt``); ``codes`` [N] = min(duration, code_size−1) + 1."""
        ling = self.phone_states(phone, tone)
        n = ling.shape[1]
        inputs = torch.cat([torch.tensor([self.start_code]), codes[: n - 1].cpu()]).to(phone.device)[None]
        caches: list[list[torch.Tensor]] = [[] for _ in self.layers]
        positions = torch.arange(n, device=phone.device)
        self._run(inputs, ling, positions, caches, torch.arange(1, n + 1))
        return DurationState(caches, n, int(codes[n - 1]))

    @torch.inference_mode()
    def predict(self, state: DurationState, phone: torch.Tensor, tone: torch.Tensor) -> torch.Tensor:
        """Codes of the target phones, one step each, continuing a copy of ``state``
        (``dur_pred``'s ``infer`` call); returns the raw codes [N] (first ≥ 0, others ≥ 1)."""
        state = state.copy()
        ling = self.phone_states(phone, tone)
        code = state.last_code
        out: list[int] = []
        for i in range(ling.shape[1]):
            pos = torch.tensor([state.length + i], device=phone.device)
            y = self._run(torch.tensor([[code]], device=phone.device), ling[:, i : i + 1], pos, state.caches, torch.tensor([i + 1]))
            value = max(self._code(y), 0 if i == 0 else 1)
            out.append(value)
            code = min(value, self.cfg.code_size + 1)  # the reference would index past its table
        return torch.tensor(out, dtype=torch.long)
