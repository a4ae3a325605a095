"""MegaTTS3 diffusion transformer: flow matching from noise to the 25 Hz latent, conditioned on
phones (expanded by durations), the prompt latent and the time.

Must equal ``Diffusion`` of ``tts/modules/llm_dit/dit.py`` (with ``transformer.Transformer``,
``time_embedding.TimestepEmbedding`` and the ``RelTransformerEncoder`` phone encoder): same
state-dict names, same numbers. Unlike the reference, the network takes a key-padding mask and a
time per row, so the CFG rows of several requests (of different lengths) run in one forward.
"""

from __future__ import annotations

from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from fasttts.models.megatts3.config import DiTConfig
from fasttts.models.megatts3.layers import RelTransformerEncoder, expand_states, phone_positions, sinusoid_table

TIME_SCALE = 1000.0
ROPE_THETA = 10000.0
SWAY_COEF = -1.0
AMO_OVERSHOOT = 3.0


# ----------------------------------------------------------------------------- blocks
def rope_table(head_dim: int, length: int) -> torch.Tensor:
    """[length, head_dim/2, 2] (cos, sin) for adjacent-pair rotation (``precompute_freqs_cis``)."""
    freqs = 1.0 / (ROPE_THETA ** (torch.arange(0, head_dim, 2)[: head_dim // 2].float() / head_dim))
    angles = torch.outer(torch.arange(length).float(), freqs)
    return torch.stack([angles.cos(), angles.sin()], dim=-1)


def apply_rope(x: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """x [B, T, H, D] rotated pairwise (x[2i], x[2i+1]) by the table's first T rows."""
    pairs = x.float().reshape(*x.shape[:-1], -1, 2)
    cos, sin = table[: x.shape[1], None, :, 0], table[: x.shape[1], None, :, 1]
    a, b = pairs[..., 0], pairs[..., 1]
    return torch.stack([a * cos - b * sin, a * sin + b * cos], dim=-1).flatten(3).type_as(x)


class Attention(nn.Module):
    """``transformer.Attention``: biased q/k/v/o, rotary q and k, SDPA."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads, self.head_dim = heads, dim // heads
        self.wq, self.wk, self.wv, self.wo = (nn.Linear(dim, dim) for _ in range(4))

    def forward(self, x: torch.Tensor, rope: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        b, t, _ = x.shape
        q, k, v = (p(x).view(b, t, self.heads, self.head_dim) for p in (self.wq, self.wk, self.wv))
        q, k = apply_rope(q, rope), apply_rope(k, rope)
        out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), attn_mask=mask)
        return cast(torch.Tensor, self.wo(out.transpose(1, 2).reshape(b, t, -1)))


class FeedForward(nn.Module):
    """``transformer.FeedForward``: w2(SiLU(w1 x))."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.w1 = nn.Linear(dim, hidden)
        self.w2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return cast(torch.Tensor, self.w2(F.silu(self.w1(x))))


class AdaLNZero(nn.Module):
    """``transformer.AdaLNZero``: SiLU(t) → 6 modulations; LayerNorm without affine, eps 1e-6."""

    def __init__(self, dim: int, chunks: int = 6) -> None:
        super().__init__()
        self.linear = nn.Linear(dim, dim * chunks)
        self.chunks = chunks

    def forward(self, t: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return torch.chunk(self.linear(F.silu(t))[:, None], self.chunks, dim=-1)


def _norm(x: torch.Tensor) -> torch.Tensor:
    return F.layer_norm(x, (x.shape[-1],), eps=1e-6)


class Block(nn.Module):
    """``transformer.TransformerBlock`` (AdaLN-zero attention and FFN)."""

    def __init__(self, cfg: DiTConfig) -> None:
        super().__init__()
        self.attention = Attention(cfg.hidden, cfg.heads)
        self.feed_forward = FeedForward(cfg.hidden, cfg.ffn_hidden)
        self.attention_norm = AdaLNZero(cfg.hidden)

    def forward(self, x: torch.Tensor, t: torch.Tensor, rope: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = cast(tuple[torch.Tensor, ...], self.attention_norm(t))
        attn: torch.Tensor = self.attention(_norm(x) * (1 + scale_msa) + shift_msa, rope, mask)
        h = x + gate_msa * attn
        ff: torch.Tensor = self.feed_forward(_norm(h) * (1 + scale_mlp) + shift_mlp)
        return h + gate_mlp * ff


class Transformer(nn.Module):
    """``transformer.Transformer``: blocks, final AdaLN (scale, shift), ``out_proj``."""

    rope: torch.Tensor  # buffer, registered in __init__

    def __init__(self, cfg: DiTConfig) -> None:
        super().__init__()
        self.layers = nn.ModuleList(Block(cfg) for _ in range(cfg.layers))
        self.norm = AdaLNZero(cfg.hidden, chunks=2)
        self.out_proj = nn.Linear(cfg.hidden, cfg.hidden)
        self.register_buffer("rope", rope_table(cfg.hidden // cfg.heads, cfg.max_seq_len), persistent=False)

    def forward(self, x: torch.Tensor, t: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x, t, self.rope, mask)
        scale, shift = self.norm(t)
        return cast(torch.Tensor, self.out_proj(_norm(x) * (1 + scale) + shift))


class TimeEmbedding(nn.Module):
    """``time_embedding.TimestepEmbedding``: sinusoids(256, ×1000) → Linear, SiLU, Linear."""

    def __init__(self, dim: int, freq_dim: int) -> None:
        super().__init__()
        self.freq_dim = freq_dim
        self.time_mlp = nn.Sequential(nn.Linear(freq_dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return cast(torch.Tensor, self.time_mlp(sinusoid_table(t * TIME_SCALE, self.freq_dim)))


# ----------------------------------------------------------------------------- model
class Diffusion(nn.Module):
    """``dit.Diffusion``: conditioning (phones, prompt latent) once, then the velocity network."""

    def __init__(self, cfg: DiTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        h = cfg.hidden
        self.ctx_mask_proj = nn.Linear(1, cfg.ctx_mask_dim)
        self.local_cond_project = nn.Linear(cfg.latent_dim + cfg.ctx_mask_dim, cfg.local_cond_dim)
        self.encoder = Transformer(cfg)
        self.x_prenet = nn.Linear(cfg.latent_dim, h)
        self.prenet = nn.Linear(cfg.local_cond_dim, h)
        self.postnet = nn.Linear(h, cfg.latent_dim)
        self.f5_time_embed = TimeEmbedding(h, cfg.time_freq_dim)
        self.ph_encoder = RelTransformerEncoder(cfg.phone_vocab, h, 2 * h, cfg.ph_heads, cfg.ph_layers, cfg.ph_kernel)
        self.tone_embed = nn.Embedding(cfg.tone_vocab, h, padding_idx=0)
        self.ling_pre_net = nn.Sequential(*(nn.Conv1d(h, h, kernel_size=4, stride=2, padding=1) for _ in range(2)))

    def condition(self, phone: torch.Tensor, tone: torch.Tensor, dur: torch.Tensor, lat_ctx: torch.Tensor, ctx_mask: torch.Tensor) -> torch.Tensor:
        """Everything but the noisy latent: phones [R, N], tones [R, N], dur (mel2ph) [R, F],
        prompt latent [R, F/4, C] (rows 1.. zeroed by the caller), ctx_mask [R, F/4, 1] →
        [R, F/4, hidden] (``prenet(local_cond) + x_ling`` of ``Diffusion._forward``)."""
        nonpad = (phone > 0).float()[..., None]
        other = (self.tone_embed(tone) + phone_positions(phone.shape[1], self.cfg.hidden, phone.device)) * nonpad
        x_ling: torch.Tensor = self.ph_encoder(phone, other_embeds=other) * nonpad
        x_ling = self.ling_pre_net(expand_states(x_ling, dur).transpose(1, 2)).transpose(1, 2)
        local = self.local_cond_project(torch.cat([lat_ctx, self.ctx_mask_proj(ctx_mask)], dim=-1))
        cond: torch.Tensor = self.prenet(local)
        return cond + x_ling

    def velocity(self, x: torch.Tensor, cond: torch.Tensor, ctx_mask: torch.Tensor, t: torch.Tensor, key_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Network output for noisy latents x [R, T, C] at times t [R]; ``key_mask`` [R, T] (True =
        real frame) lets rows of different lengths share a batch."""
        h = self.x_prenet(x * (1 - ctx_mask)) + cond
        mask = None if key_mask is None else key_mask[:, None, None, :]
        return cast(torch.Tensor, self.postnet(self.encoder(h, self.f5_time_embed(t), mask)))


def time_schedule(steps: int) -> torch.Tensor:
    """t_i = i/N warped by sway sampling (coefficient −1): 1 − cos(π/2 · i/N)."""
    t = torch.linspace(0, 1, steps + 1)
    return t + SWAY_COEF * (torch.cos(torch.pi / 2 * t) - 1 + t)


def amo_step(z: torch.Tensor, t: float, t_next: float, v: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """One AMO-sampler step from t to t_next (overshoot c = 3), in float32."""
    z = z.float()
    o = min(t_next + AMO_OVERSHOOT * (t_next - t), 1.0)
    a = t_next / o
    b: float = max((1 - t_next) ** 2 - (a * (1 - o)) ** 2, 0.0) ** 0.5  # float ** float is typed Any (it may be complex)
    return a * (z + (o - t) * v.float()) + b * noise


def guide(v: torch.Tensor, text_weight: float, speaker_weight: float) -> torch.Tensor:
    """Multi-condition CFG over rows (speaker+text, text, none): v_u + p_w(v_t − v_u) + t_w(v_st − v_t)."""
    v_st, v_t, v_u = v.chunk(3)
    return v_u + text_weight * (v_t - v_u) + speaker_weight * (v_st - v_t)
