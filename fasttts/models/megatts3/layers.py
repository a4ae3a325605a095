"""Blocks shared by MegaTTS3's networks, each equal to the official module it names.

- ``WNConv1d`` / ``WNConvTranspose1d``: ``torch.nn.utils.weight_norm`` convolutions as stored
  (``weight_g``, ``weight_v``; w = g · v / ‖v‖ over every dim but 0).
- ``RelTransformerEncoder``: ``tts/modules/ar_dur/commons/rel_transformer.py`` (conv prenet,
  windowed relative-position attention, conv FFN, channel LayerNorm with eps 1e-4), the phone
  encoder of both the DiT and the duration LM.
- ``phone_positions``: ``nar_tts_modules.PosEmb``; ``length_regulate``: ``LengthRegulator``;
  ``expand_states``: ``ar_dur_predictor.expand_states``.
"""

from __future__ import annotations

import math
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn


# ----------------------------------------------------------------------------- weight norm
class WNConv1d(nn.Module):
    """A weight-normalised Conv1d with the state-dict names of ``weight_norm(nn.Conv1d(...))``."""

    def __init__(self, cin: int, cout: int, kernel: int, *, stride: int = 1, padding: int = 0, dilation: int = 1) -> None:
        super().__init__()
        self.weight_g = nn.Parameter(torch.ones(cout, 1, 1))
        self.weight_v = nn.Parameter(torch.randn(cout, cin, kernel) * 0.01)
        self.bias = nn.Parameter(torch.zeros(cout))
        self.stride, self.padding, self.dilation = stride, padding, dilation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = torch._weight_norm(self.weight_v, self.weight_g, 0)
        return F.conv1d(x, w, self.bias, self.stride, self.padding, self.dilation)


class WNConvTranspose1d(nn.Module):
    """``weight_norm(nn.ConvTranspose1d(...))``: ``weight_v`` is [in, out, k], ``weight_g`` [in, 1, 1]."""

    def __init__(self, cin: int, cout: int, kernel: int, *, stride: int, padding: int, output_padding: int) -> None:
        super().__init__()
        self.weight_g = nn.Parameter(torch.ones(cin, 1, 1))
        self.weight_v = nn.Parameter(torch.randn(cin, cout, kernel) * 0.01)
        self.bias = nn.Parameter(torch.zeros(cout))
        self.stride, self.padding, self.output_padding = stride, padding, output_padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = torch._weight_norm(self.weight_v, self.weight_g, 0)
        return F.conv_transpose1d(x, w, self.bias, self.stride, self.padding, self.output_padding)


# ----------------------------------------------------------------------------- positions, durations
def sinusoid_table(positions: torch.Tensor, dim: int) -> torch.Tensor:
    """``PosEmb`` / the time embedding's sinusoids: [sin | cos] of pos · 10000^(-i/(half-1))."""
    half = dim // 2
    freq = torch.exp(torch.arange(half, device=positions.device, dtype=torch.float32) * -(math.log(10000) / (half - 1)))
    angles = positions.float()[..., None] * freq
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


def phone_positions(length: int, dim: int, device: torch.device) -> torch.Tensor:
    """[1, length, dim] sinusoidal phone positions 0…length−1."""
    return sinusoid_table(torch.arange(length, device=device)[None], dim)


def length_regulate(dur: torch.Tensor) -> torch.Tensor:
    """Durations [B, N] (frames per phone) → mel2ph [B, max total]: the 1-based phone index of
    every frame, 0 past a row's end."""
    dur = dur.long().clamp_min(0)
    total = int(dur.sum(-1).max()) if dur.numel() else 0
    ends = dur.cumsum(1)
    frames = torch.arange(total, device=dur.device)
    # phone index = number of phone ends at or before the frame, +1; frames past the end give N+1 → 0
    idx = (frames[None, :, None] >= ends[:, None, :]).sum(-1) + 1
    return torch.where(frames[None] < ends[:, -1:], idx, torch.zeros_like(idx))


def expand_states(h: torch.Tensor, mel2ph: torch.Tensor) -> torch.Tensor:
    """Phone states [B, N, C] → frame states [B, T, C] by 1-based ``mel2ph`` (0 → zeros)."""
    h = F.pad(h, [0, 0, 1, 0])
    return torch.gather(h, 1, mel2ph[..., None].expand(-1, -1, h.shape[-1]))


# ----------------------------------------------------------------------------- relative transformer
class ChannelNorm(nn.Module):
    """``rel_transformer.LayerNorm``: over channels of [B, C, T], eps 1e-4, ``gamma``/``beta``."""

    def __init__(self, channels: int, eps: float = 1e-4) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(channels))
        self.beta = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x.transpose(1, 2), (x.shape[1],), self.gamma, self.beta, self.eps).transpose(1, 2)


class ConvReluNorm(nn.Module):
    """``rel_transformer.ConvReluNorm``: the encoder's residual conv prenet (kernel 5, 3 layers)."""

    def __init__(self, channels: int, kernel: int = 5, layers: int = 3) -> None:
        super().__init__()
        self.conv_layers = nn.ModuleList(nn.Conv1d(channels, channels, kernel, padding=kernel // 2) for _ in range(layers))
        self.norm_layers = nn.ModuleList(ChannelNorm(channels) for _ in range(layers))
        self.proj = nn.Conv1d(channels, channels, 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = x
        for conv, norm in zip(self.conv_layers, self.norm_layers):
            h = torch.relu(norm(conv(h * mask)))
        out: torch.Tensor = self.proj(h)
        return (x + out) * mask


class RelAttention(nn.Module):
    """``rel_transformer.MultiHeadAttention`` with a shared (1-head) relative window of ±``window``."""

    def __init__(self, channels: int, heads: int, window: int = 4) -> None:
        super().__init__()
        self.heads, self.window, self.dk = heads, window, channels // heads
        self.conv_q = nn.Conv1d(channels, channels, 1)
        self.conv_k = nn.Conv1d(channels, channels, 1)
        self.conv_v = nn.Conv1d(channels, channels, 1)
        self.emb_rel_k = nn.Parameter(torch.zeros(1, 2 * window + 1, self.dk))
        self.emb_rel_v = nn.Parameter(torch.zeros(1, 2 * window + 1, self.dk))
        self.conv_o = nn.Conv1d(channels, channels, 1)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor) -> torch.Tensor:
        b, c, t = x.shape
        q, k, v = (conv(x).view(b, self.heads, self.dk, t).transpose(2, 3) for conv in (self.conv_q, self.conv_k, self.conv_v))
        w = self.window
        offset = torch.arange(t, device=x.device)[None, :] - torch.arange(t, device=x.device)[:, None]  # j - i
        inside = offset.abs() <= w
        rel = (offset.clamp(-w, w) + w).expand(b, self.heads, t, t)
        scale = 1 / math.sqrt(self.dk)
        scores = torch.matmul(q, k.transpose(-2, -1)) * scale
        rel_logits = torch.matmul(q, self.emb_rel_k[0].t())  # [b, h, t, 2w+1]
        scores = scores + torch.where(inside, rel_logits.gather(-1, rel), torch.zeros((), dtype=x.dtype)) * scale
        scores = scores.masked_fill(attn_mask == 0, -1e4)
        p = F.softmax(scores, dim=-1)
        out = torch.matmul(p, v)
        # relative values: weight of offset o for query i is p[i, i + o]
        cols = torch.arange(t, device=x.device)[:, None] + torch.arange(-w, w + 1, device=x.device)[None, :]  # [t, 2w+1]
        valid = (cols >= 0) & (cols < t)
        p_rel = p.gather(-1, cols.clamp(0, t - 1).expand(b, self.heads, t, 2 * w + 1)) * valid
        out = out + torch.matmul(p_rel, self.emb_rel_v[0])
        return cast(torch.Tensor, self.conv_o(out.transpose(2, 3).reshape(b, c, t)))


class ConvFFN(nn.Module):
    """``rel_transformer.FFN``: conv (kernel k, same padding) → ReLU → 1×1 conv, masked."""

    def __init__(self, channels: int, filters: int, kernel: int) -> None:
        super().__init__()
        self.conv_1 = nn.Conv1d(channels, filters, kernel, padding=kernel // 2)
        self.conv_2 = nn.Conv1d(filters, channels, 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h: torch.Tensor = self.conv_2(torch.relu(self.conv_1(x * mask)) * mask)
        return h * mask


class RelEncoderStack(nn.Module):
    """``rel_transformer.Encoder`` (the attention/FFN stack; pre-LN when ``pre_ln``)."""

    def __init__(self, channels: int, filters: int, heads: int, layers: int, kernel: int, pre_ln: bool) -> None:
        super().__init__()
        self.pre_ln = pre_ln
        self.attn_layers = nn.ModuleList(RelAttention(channels, heads) for _ in range(layers))
        self.norm_layers_1 = nn.ModuleList(ChannelNorm(channels) for _ in range(layers))
        self.ffn_layers = nn.ModuleList(ConvFFN(channels, filters, kernel) for _ in range(layers))
        self.norm_layers_2 = nn.ModuleList(ChannelNorm(channels) for _ in range(layers))
        if pre_ln:
            self.last_ln = ChannelNorm(channels)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        attn_mask = mask.unsqueeze(2) * mask.unsqueeze(-1)
        for attn, n1, ffn, n2 in zip(self.attn_layers, self.norm_layers_1, self.ffn_layers, self.norm_layers_2):
            x = x * mask
            y = attn(n1(x) if self.pre_ln else x, attn_mask)
            x = x + y if self.pre_ln else n1(x + y)
            y = ffn(n2(x) if self.pre_ln else x, mask)
            x = x + y if self.pre_ln else n2(x + y)
        if self.pre_ln:
            x = self.last_ln(x)
        return x * mask


class RelTransformerEncoder(nn.Module):
    """``rel_transformer.RelTransformerEncoder``: token embedding × √C (+ other embeddings) →
    conv prenet → relative transformer. Ids 0 are padding (and end a row's length)."""

    def __init__(self, vocab: int, channels: int, filters: int, heads: int, layers: int, kernel: int, *, prenet: bool = True, pre_ln: bool = True) -> None:
        super().__init__()
        self.channels = channels
        self.emb = nn.Embedding(vocab, channels, padding_idx=0)
        self.has_prenet = prenet
        if prenet:
            self.pre = ConvReluNorm(channels)
        self.encoder = RelEncoderStack(channels, filters, heads, layers, kernel, pre_ln)

    def forward(self, tokens: torch.Tensor, other_embeds: torch.Tensor | float = 0.0) -> torch.Tensor:
        lengths = (tokens > 0).long().sum(-1)
        x = (self.emb(tokens) * math.sqrt(self.channels) + other_embeds).transpose(1, 2)
        mask = (torch.arange(x.shape[2], device=x.device)[None] < lengths[:, None]).to(x.dtype)[:, None]
        if self.has_prenet:
            x = self.pre(x, mask)
        out: torch.Tensor = self.encoder(x, mask)
        return out.transpose(1, 2)
