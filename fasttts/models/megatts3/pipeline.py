"""MegaTTS3's per-segment computation between the g2p and the audio, as pure functions:

- :func:`target_durations`: ``dur_pred``'s rules after the duration LM, in its order (crossfade room
  or final-pause clamp, random jitter, long pauses, first phone, pad to a multiple of 8);
- :func:`dit_inputs`: ``prepare_inputs_for_dit`` (reference + target, three CFG rows);
- :func:`sample_batch`: ``Diffusion.inference`` for several requests at once — every request's
  three CFG rows in one forward, rows padded to the longest with a key mask, each request with its
  own noise generator (so a request's result does not depend on what it was batched with);
- :func:`decode_audio`: the WaveVAE decode with the prompt frames restored, prompt samples trimmed.
All tensors are on the networks' device; randomness comes only from the generators passed in.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from fasttts.models.megatts3.dit import Diffusion, amo_step, guide, time_schedule
from fasttts.models.megatts3.layers import length_regulate
from fasttts.models.megatts3.wavvae import WavVAEDecoder

MAX_DUR = 127
CROSSFADE_FRAMES = 32
FINAL_PAUSE = (64, 128)
LONG_PAUSES, SHORT_PAUSES = (148, 153, 166, 145), (163, 165)
FIRST_PHONE_FRAMES = 8
FRAMES_MULTIPLE = 8
CFG_PHONE, CFG_TONE = 301, 31
DIT_TONES = {0, 4, 11, 12, 13, 14, 15}


def target_durations(
    codes: torch.Tensor, phones: Sequence[int], *, first: bool, final: bool, disturb: float, alpha: float, generator: torch.Generator
) -> torch.Tensor:
    """Duration-LM codes [N] → frames per phone [N] (100 Hz)."""
    dur = (codes.float() - 1).clamp(0, MAX_DUR)
    if final:
        dur[-1] = dur[-1].clamp(*FINAL_PAUSE)
    else:
        dur[-1] = dur[-1] + CROSSFADE_FRAMES
    choice = (torch.rand(dur.shape, generator=generator) > 0.5).float()
    r = 1 + torch.rand(dur.shape, generator=generator) * disturb
    dur = dur * r * choice + dur / r * (1 - choice)
    dur = torch.round(dur * alpha).clamp(0, MAX_DUR)
    ph = torch.tensor(list(phones))
    for p in LONG_PAUSES:
        dur[ph == p] = dur[ph == p].clamp_min(64)
    for p in SHORT_PAUSES:
        dur[ph == p] = dur[ph == p].clamp_min(32)
    if first:
        dur[0] = FIRST_PHONE_FRAMES
    pad = FRAMES_MULTIPLE - int(dur.sum()) % FRAMES_MULTIPLE
    if pad < FRAMES_MULTIPLE:
        dur[-1] += pad
    return dur.long()


@dataclass
class DiTItem:
    """One request's DiT job: CFG-row inputs, sampling settings and its noise generator."""

    phone: torch.Tensor  # [3, N]
    tone: torch.Tensor  # [3, N]
    dur: torch.Tensor  # [3, F] mel2ph
    lat_ctx: torch.Tensor  # [3, T, 32]
    ctx_mask: torch.Tensor  # [3, T, 1]
    steps: int
    text_weight: float
    speaker_weight: float
    generator: torch.Generator

    @property
    def frames(self) -> int:
        return self.lat_ctx.shape[1]


def dit_inputs(
    ref_phone: Sequence[int],
    ref_tone: Sequence[int],
    mel2ph_ref: torch.Tensor,
    phone: Sequence[int],
    tone: Sequence[int],
    dur: torch.Tensor,
    latent: torch.Tensor,
    vae_stride: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(phone, tone, dur, lat_ctx, ctx_mask) for the three CFG rows (speaker+text, text, none)."""
    mel2ph = torch.cat([mel2ph_ref, length_regulate(dur[None])[0] + len(ref_phone)])
    mel2ph = mel2ph[: len(mel2ph) // FRAMES_MULTIPLE * FRAMES_MULTIPLE]
    ph = torch.tensor([*ref_phone, *phone])
    tn = torch.tensor([*ref_tone, *tone])
    tn = torch.where(torch.tensor([int(t) in DIT_TONES for t in tn.tolist()]), tn, torch.full_like(tn, 3))
    frames = len(mel2ph) // vae_stride
    p = latent.shape[0]
    lat = torch.zeros(3, frames, latent.shape[1])
    lat[0, :p] = latent[:frames]
    mask = torch.zeros(3, frames, 1)
    mask[:, :p] = 1
    return (torch.stack([ph, ph, torch.full_like(ph, CFG_PHONE)]), torch.stack([tn, tn, torch.full_like(tn, CFG_TONE)]), mel2ph.repeat(3, 1), lat, mask)


def _pad_to(x: torch.Tensor, length: int, dim: int = 1) -> torch.Tensor:
    pad = [0, 0] * (x.dim() - dim - 1) + [0, length - x.shape[dim]]
    return F.pad(x, pad)


@torch.inference_mode()
def sample_batch(
    dit: Diffusion, items: Sequence[DiTItem], device: torch.device | str = "cpu", on_forward: Callable[[int], object] | None = None
) -> list[torch.Tensor]:
    """Flow-matching sampling of several requests in lock-step; returns each one's latent [T, 32].
    Requests with different step counts share forwards while both still run. ``on_forward(rows)``
    is told the batch size of every DiT forward (for metrics and tests)."""
    conds = [dit.condition(i.phone.to(device), i.tone.to(device), i.dur.to(device), i.lat_ctx.to(device), i.ctx_mask.to(device)) for i in items]
    longest = max(i.frames for i in items)
    cond = torch.cat([_pad_to(c, longest) for c in conds])
    ctx = torch.cat([_pad_to(i.ctx_mask.to(device), longest) for i in items])
    keys = torch.cat([(torch.arange(longest) < i.frames).repeat(3, 1) for i in items]).to(device)
    xs = [torch.randn(1, i.frames, 32, generator=i.generator).to(device) for i in items]
    schedules = [time_schedule(i.steps) for i in items]
    for step in range(max(i.steps for i in items)):
        live = [k for k, i in enumerate(items) if step < i.steps]
        rows = torch.cat([torch.arange(3 * k, 3 * k + 3) for k in live]).to(device)
        x = torch.cat([_pad_to(xs[k], longest).repeat(3, 1, 1) for k in live])
        t = torch.cat([schedules[k][step].repeat(3) for k in live]).to(device)
        if on_forward is not None:
            on_forward(len(rows))
        padded = any(items[k].frames < longest for k in live)
        v = dit.velocity(x, cond[rows], ctx[rows], t, keys[rows] if padded else None)
        for j, k in enumerate(live):
            item = items[k]
            guided = guide(v[3 * j : 3 * j + 3, : item.frames], item.text_weight, item.speaker_weight)
            noise = torch.randn(1, item.frames, 32, generator=item.generator).to(device)
            xs[k] = amo_step(xs[k], float(schedules[k][step]), float(schedules[k][step + 1]), guided, noise)
    return [x[0].cpu() for x in xs]


@torch.inference_mode()
def decode_audio(vae: WavVAEDecoder, latent: torch.Tensor, prompt: torch.Tensor, device: torch.device | str = "cpu") -> torch.Tensor:
    """DiT output [T, 32] with its first P frames replaced by the prompt latent [P, 32] → the
    target's 24 kHz samples (the prompt's 960·P cut off)."""
    x = latent.clone()
    x[: prompt.shape[0]] = prompt[: x.shape[0]]
    wav = vae.decode(x[None].to(device))[0, 0].float().cpu()
    return wav[prompt.shape[0] * vae.cfg.hop :]
