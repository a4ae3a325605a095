"""SNAC 24 kHz: Orpheus frames → audio, batched, with windows that splice to within float rounding.

Reference: hubertsiuzdak/snac (``snac/snac.py``, ``layers.py``, ``vq.py``), used as is through
the ``snac`` package: ``SNAC(**config.json)`` + ``pytorch_model.bin``, read from a local
directory only. One Orpheus frame is 7 codes: position 0 → layer 0, positions 1, 4 → layer 1,
positions 2, 3, 5, 6 → layer 2 (in that order), i.e. 1 + 2 + 4 codes at 12, 23 and 47 Hz, which
decode to ``hop · vq_strides[0]`` = 2048 samples.

Two things make windowed decoding equal a one-shot decode, so streaming can emit every frame:

* The decoder is convolutional (no attention in the 24 kHz model) with a receptive field of
  about 2.25 frames each side, so a window with 3 frames of context either side computes the
  one-shot samples of its middle from the same inputs. Not bit for bit: the convolution kernels
  sum in an order that depends on the input length (and the thread count), so a window's samples
  differ from the one-shot decode's by float rounding, at most :data:`SPLICE_TOLERANCE`
  (measured on CPU in float32, random weights, 1-4 threads: at most 1.2e-6 with the tiny SNAC and
  6.8e-7 with the release-sized one, in 37-75 % of the samples; as int16 at most 1 LSB, in a few
  hundred samples per 400k). Batched windows (padded, below) are within the same bound.
* SNAC's ``NoiseBlock`` adds fresh ``randn`` noise on every call, so two decodes of the same codes
  differ. We swap it for :class:`PositionalNoise`, which draws the same kind of noise (Gaussian,
  scaled by the block's own learned ``linear``) from a fixed table indexed by absolute sample
  position: a window starting at frame ``s`` sees exactly the noise a one-shot decode saw there.
  The parameters, and so the checkpoint's keys, are the official ones.

Batching pads windows to a common length without changing any sample a caller keeps: a window
that ends before the utterance does is padded on the right (its lookahead absorbs the edge), one
that starts after frame 0 on the left (its left context absorbs it); a window that is the whole
utterance cannot be padded and is decoded with others of its exact length.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from snac import SNAC
from snac.layers import NoiseBlock
from torch import nn

from fasttts.errors import ModelLoadError

LAYER_POSITIONS: tuple[tuple[int, ...], ...] = ((0,), (1, 4), (2, 3, 5, 6))
"""Frame positions feeding each SNAC layer, in time order within the frame."""
SPLICE_TOLERANCE = 4e-6
"""Largest difference between a windowed (streamed or batched) decode and the one-shot decode of
the same frames (float32 samples in [-1, 1]; about 1/8 of an int16 step). Asserted by the tests."""
NOISE_TABLE_SIZE = 1 << 20
"""Length of the positional noise table (period ≈ 44 s at the last block, far beyond hearing a repeat)."""


@dataclass(frozen=True)
class DecodeItem:
    """A run of consecutive frames of one utterance to decode."""

    frames: np.ndarray
    """``(F, 7)`` int codes in [0, 4096)."""
    start: int = 0
    """Index of ``frames[0]`` in the utterance (positions the noise; 0 means the true start)."""
    at_end: bool = True
    """Whether ``frames[-1]`` is the utterance's last frame (then its right edge must stay unpadded)."""


def frames_to_codes(frames: np.ndarray, device: torch.device | str = "cpu") -> list[torch.Tensor]:
    """``(B, F, 7)`` frames → SNAC's three code tensors ``(B, F)``, ``(B, 2F)``, ``(B, 4F)``."""
    frames_t = torch.as_tensor(np.asarray(frames, dtype=np.int64), device=device)
    batch = frames_t.shape[0]
    return [frames_t[:, :, list(positions)].reshape(batch, -1) for positions in LAYER_POSITIONS]


class _NoiseWindow:
    """Where the frames being decoded sit in their utterances; set per call under the codec's lock."""

    def __init__(self) -> None:
        self.frame_offsets: torch.Tensor | None = None  # (B,) absolute index of each row's first frame
        self.num_frames = 1


class PositionalNoise(nn.Module):
    """Drop-in for ``snac.layers.NoiseBlock``: ``x + n · linear(x)`` with ``n`` read from a fixed
    Gaussian table at each sample's absolute position instead of drawn afresh."""

    table: torch.Tensor  # a buffer, registered in __init__

    def __init__(self, block: NoiseBlock, table: torch.Tensor, window: _NoiseWindow) -> None:
        super().__init__()
        self.linear = block.linear  # same parameter names as the official block
        self.register_buffer("table", table, persistent=False)
        self._window = window

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, C, T)
        batch, _, length = x.shape
        per_frame = length // self._window.num_frames
        offsets = self._window.frame_offsets
        if offsets is None:
            offsets = torch.zeros(batch, dtype=torch.long, device=x.device)
        positions = (offsets.to(x.device)[:, None] * per_frame + torch.arange(length, device=x.device)) % len(self.table)
        noise = self.table[positions].to(x.dtype).unsqueeze(1)  # (B, 1, T)
        gain: torch.Tensor = self.linear(x)
        return x + noise * gain


def _install_positional_noise(model: SNAC, seed: int) -> _NoiseWindow:
    if any(isinstance(m, PositionalNoise) for m in model.modules()):
        raise ValueError("this SNAC module already serves a SnacCodec; load another copy for a second codec")
    window = _NoiseWindow()
    generator = torch.Generator().manual_seed(seed)
    device = next(model.parameters()).device
    table = torch.randn(NOISE_TABLE_SIZE, generator=generator).to(device)
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, NoiseBlock):
                setattr(parent, name, PositionalNoise(child, table, window))
    return window


def load_snac(snac_dir: str | Path, device: str = "cpu") -> SNAC:
    """The official SNAC module from ``config.json`` + ``pytorch_model.bin``; every checkpoint
    tensor must match a parameter one to one (strict load). The weights are held once: the module's
    tensors are the ones read from the file (:func:`snac_from_state`)."""
    root = Path(snac_dir)
    config_path, weights_path = root / "config.json", root / "pytorch_model.bin"
    for path in (config_path, weights_path):
        if not path.exists():
            raise ModelLoadError(f"not a SNAC directory: {path} is missing")
    config = json.loads(config_path.read_text())
    state = torch.load(weights_path, map_location="cpu", weights_only=True)
    return snac_from_state(config, state, source=f"{weights_path} ({config_path})").to(device).eval()


def snac_from_state(config: dict[str, Any], state: Mapping[str, torch.Tensor], *, source: str = "the checkpoint") -> SNAC:
    """``SNAC(**config)`` holding ``state``'s tensors themselves, not copies of them.

    The module is built on the meta device (no random initialisation, no memory) and the
    checkpoint assigned into it (``load_state_dict(assign=True)``, strict). The weight-normed
    convolutions are ``torch.nn.utils.parametrizations.weight_norm``: their parameters are
    ``original0``/``original1`` (the checkpoint's ``weight_g``/``weight_v``, renamed by
    weight_norm's own load hook) and ``weight`` is computed from them on each access, so nothing
    derived is left on meta. Floating tensors are cast to the module's dtype, as a copying load
    would (a no-op, so no copy, for the float32 checkpoints SNAC ships). A config whose module has
    buffers the checkpoint does not carry (non-persistent: the rotary ``scale`` of SNAC's
    attention, absent from the 24 kHz model) is built on the CPU and loaded by copy instead, so
    those buffers hold their computed values."""
    try:
        # The first weight_norm on meta runs torch's Python norm, which imports sympy (~150 MB, once
        # per process); an engine's LLM loader imports it anyway (its meta build pulls in torch._dynamo).
        with torch.device("meta"):
            model = SNAC(**config)
    except TypeError as exc:
        raise ModelLoadError(f"{source}: not a SNAC config ({exc})") from exc
    strides = tuple(config.get("vq_strides", model.vq_strides))
    if tuple(strides[0] // s for s in strides) != tuple(len(p) for p in LAYER_POSITIONS):
        raise ModelLoadError(f"{source}: Orpheus needs vq_strides giving 1, 2 and 4 codes per frame, got {list(strides)}")
    assign = not any(m._non_persistent_buffers_set for m in model.modules())
    if not assign:
        model = SNAC(**config)
    dtype = next(model.parameters()).dtype
    state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
    try:
        model.load_state_dict(state, strict=True, assign=assign)
    except RuntimeError as exc:
        raise ModelLoadError(f"{source} does not match its config: {exc}") from exc
    left = [name for name, t in (*model.named_parameters(), *model.named_buffers()) if t.is_meta]
    if left:  # strict loading assigns every parameter and persistent buffer: checked, not assumed
        raise ModelLoadError(f"{source}: no checkpoint tensor for {left[:5]}")
    return model


class SnacCodec:
    """Decodes Orpheus frames with SNAC; :meth:`decode_batch` is the micro-batcher's function."""

    def __init__(self, model: SNAC, *, device: str = "cpu", noise_seed: int = 0) -> None:
        self.model = model.to(device).eval()
        self.device = torch.device(device)
        self.frame_samples = int(model.hop_length) * int(model.vq_strides[0])
        self.sample_rate = int(model.sampling_rate)
        self.noise_seed = noise_seed
        self._window = _install_positional_noise(self.model, noise_seed)
        self._lock = threading.Lock()
        self.calls = 0
        """Batched decoder calls so far (one per padded group)."""

    @classmethod
    def load(cls, snac_dir: str | Path, *, device: str = "cpu", noise_seed: int = 0) -> SnacCodec:
        return cls(load_snac(snac_dir, device), device=device, noise_seed=noise_seed)

    def decode(self, frames: np.ndarray) -> np.ndarray:
        """One-shot decode of a whole utterance: ``(F, 7)`` → ``F · 2048`` samples."""
        return self.decode_batch([DecodeItem(np.asarray(frames), 0, True)])[0]

    def decode_batch(self, items: Sequence[DecodeItem]) -> list[np.ndarray]:
        """Decode several windows in as few model calls as padding allows (blocking; run it off
        the event loop). Returns ``len(frames) · 2048`` float32 samples per item."""
        target = max(len(item.frames) for item in items)
        groups: dict[int, list[tuple[int, int]]] = {}  # length → [(item index, left pad)]
        for k, item in enumerate(items):
            n = len(item.frames)
            if n == target or not item.at_end:
                groups.setdefault(target, []).append((k, 0))
            elif item.start > 0:
                groups.setdefault(target, []).append((k, target - n))
            else:  # the whole utterance: no edge may move
                groups.setdefault(n, []).append((k, 0))
        results: list[np.ndarray] = [np.zeros(0, np.float32)] * len(items)
        for length, members in groups.items():
            frames = np.zeros((len(members), length, 7), dtype=np.int64)
            offsets = np.zeros(len(members), dtype=np.int64)
            for row, (k, left) in enumerate(members):
                item = items[k]
                frames[row, left : left + len(item.frames)] = item.frames
                offsets[row] = item.start - left
            audio = self._decode(frames, offsets)  # (B, length · 2048)
            for row, (k, left) in enumerate(members):
                lo = left * self.frame_samples
                results[k] = audio[row, lo : lo + len(items[k].frames) * self.frame_samples].copy()
        return results

    def _decode(self, frames: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        codes = frames_to_codes(frames, self.device)
        with self._lock, torch.inference_mode():
            self._window.frame_offsets = torch.as_tensor(offsets, device=self.device)
            self._window.num_frames = frames.shape[1]
            audio: torch.Tensor = self.model.decode(codes)  # (B, 1, F · 2048)
            self.calls += 1
        return audio[:, 0].float().cpu().numpy()
