"""Per-sequence sampling for one batched decoding step.

Every sequence keeps its own settings (temperature, 0 = greedy; top-k; top-p; CTRL repetition
penalty over prompt + generated tokens) and its own CPU ``torch.Generator``. The only randomness a
sequence consumes is one uniform draw per sampled token from its own generator (inverse-CDF
sampling), so the same seed gives the same tokens whatever else shares the batch.

The constraint's allowed ranges become a mask. When every sequence of the step is constrained, the
LM head is applied only to the hull ``[lo, hi)`` of the allowed ranges (Spark's semantic phase: one
range of 8192 ids out of 166,000), and token ids are shifted back by ``lo``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from fasttts.backends.base import Ranges


@dataclass
class SamplingState:
    """One sequence's sampling settings and random stream."""

    temperature: float
    top_k: int
    top_p: float
    repetition_penalty: float
    generator: torch.Generator


def vocab_window(allowed: Sequence[Ranges | None], vocab_size: int) -> tuple[int, int]:
    """``[lo, hi)`` covering every sequence's allowed ids (the full vocabulary if any is free)."""
    if any(r is None for r in allowed):
        return 0, vocab_size
    lo = min((r[0][0] for r in allowed if r), default=0)
    hi = max((r[-1][1] for r in allowed if r), default=vocab_size)
    return max(lo, 0), min(hi, vocab_size)


def allowed_mask(allowed: Sequence[Ranges | None], window: tuple[int, int], device: torch.device) -> torch.Tensor | None:
    """[B, hi - lo] bool, True = allowed; ``None`` when nothing inside the window is masked."""
    lo, hi = window
    if all(r is not None and len(r) == 1 and r[0] == (lo, hi) for r in allowed):
        return None
    width = max(len(r) if r is not None else 1 for r in allowed)
    bounds = torch.zeros(len(allowed), width, 2, dtype=torch.long)
    for i, ranges in enumerate(allowed):
        for j, (a, b) in enumerate(ranges if ranges is not None else ((lo, hi),)):
            bounds[i, j, 0], bounds[i, j, 1] = a - lo, b - lo
    bounds = bounds.to(device)
    ids = torch.arange(hi - lo, device=device)
    return ((ids >= bounds[..., 0:1]) & (ids < bounds[..., 1:2])).any(dim=1)  # [B, R, W] -> [B, W]


def sample(logits: torch.Tensor, states: Sequence[SamplingState], seen: torch.Tensor | None, mask: torch.Tensor | None) -> torch.Tensor:
    """Pick one token per row. logits [B, W] float32 (ids relative to the window), seen [B, W] bool
    (token occurred in the sequence), mask [B, W] bool. Returns [B] long, relative to the window."""
    device = logits.device
    penalty = torch.tensor([s.repetition_penalty for s in states], device=device)[:, None]
    if seen is not None and bool((penalty != 1.0).any()):
        penalised = torch.where(logits < 0, logits * penalty, logits / penalty)
        logits = torch.where(seen, penalised, logits)
    if mask is not None:
        logits = logits.masked_fill(~mask, float("-inf"))
    greedy = logits.argmax(dim=-1)
    if all(s.temperature <= 0 for s in states):
        return greedy

    # Every sampled row goes through the same sorted inverse-CDF path, so a row's pick depends only
    # on its own logits, settings and uniform draw, never on which neighbours need top-k/top-p.
    temps = torch.tensor([s.temperature if s.temperature > 0 else 1.0 for s in states], device=device)[:, None]
    scaled, order = (logits / temps).sort(dim=-1, descending=True)
    width = scaled.shape[-1]
    ks = torch.tensor([s.top_k if 0 < s.top_k < width else width for s in states], device=device)[:, None]
    scaled = scaled.masked_fill(torch.arange(width, device=device) >= ks, float("-inf"))
    probs = torch.softmax(scaled, dim=-1)
    top_p = torch.tensor([s.top_p for s in states], device=device)[:, None]
    probs = probs.masked_fill(probs.cumsum(dim=-1) - probs > top_p, 0.0)  # smallest head with mass >= p
    cdf = probs.cumsum(dim=-1)
    u = torch.stack([torch.rand((), generator=s.generator) if s.temperature > 0 else torch.zeros(()) for s in states])
    targets = (u.to(device) * cdf[:, -1])[:, None]
    picked = torch.searchsorted(cdf, targets, right=True).clamp_(max=width - 1)
    picked = order.gather(1, picked).squeeze(1)
    is_greedy = torch.tensor([s.temperature <= 0 for s in states], device=device)
    return torch.where(is_greedy, greedy, picked)
