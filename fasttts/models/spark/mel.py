"""Mel spectrogram for the BiCodec speaker encoder, computed with ``torch.stft``.

torchaudio is not available, so this reproduces what BiCodec's reference builds with
``torchaudio.transforms.MelSpectrogram(sample_rate, n_fft, win_length, hop_length, f_min, f_max,
n_mels=..., power=1, norm="slaney", mel_scale="slaney")`` (defaults: periodic Hann window of
``win_length`` zero-padded to ``n_fft`` at the centre, ``center=True``, reflect padding, magnitude
spectrum, no log). The filterbank follows torchaudio's ``melscale_fbanks``: triangles on the
Slaney mel scale between ``f_min`` and ``f_max`` (Nyquist when ``None``), each scaled by
``2 / (f_hi - f_lo)`` (Slaney area normalisation).
"""

from __future__ import annotations

import math

import torch
from torch import nn

_F_SP = 200.0 / 3  # Slaney: linear part, Hz per mel
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP
_LOGSTEP = math.log(6.4) / 27.0


def hz_to_mel_slaney(freq: torch.Tensor) -> torch.Tensor:
    """Slaney mel scale: linear below 1 kHz, logarithmic above."""
    linear = freq / _F_SP
    log = _MIN_LOG_MEL + torch.log(freq.clamp(min=1e-10) / _MIN_LOG_HZ) / _LOGSTEP
    return torch.where(freq >= _MIN_LOG_HZ, log, linear)


def mel_to_hz_slaney(mels: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`hz_to_mel_slaney`."""
    linear = mels * _F_SP
    log = _MIN_LOG_HZ * torch.exp(_LOGSTEP * (mels - _MIN_LOG_MEL))
    return torch.where(mels >= _MIN_LOG_MEL, log, linear)


def slaney_mel_filterbank(n_freqs: int, f_min: float, f_max: float, n_mels: int, sample_rate: int) -> torch.Tensor:
    """Triangular filterbank, shape [n_freqs, n_mels], as torchaudio's ``melscale_fbanks``."""
    f64, cpu = torch.float64, "cpu"  # on the CPU also when built under a meta-device context
    all_freqs = torch.linspace(0, sample_rate // 2, n_freqs, dtype=f64, device=cpu)
    m_min = hz_to_mel_slaney(torch.tensor(float(f_min), dtype=f64, device=cpu))
    m_max = hz_to_mel_slaney(torch.tensor(float(f_max), dtype=f64, device=cpu))
    m_pts = torch.linspace(float(m_min), float(m_max), n_mels + 2, dtype=f64, device=cpu)
    f_pts = mel_to_hz_slaney(m_pts)  # [n_mels + 2]
    f_diff = f_pts[1:] - f_pts[:-1]  # [n_mels + 1]
    slopes = f_pts.unsqueeze(0) - all_freqs.unsqueeze(1)  # [n_freqs, n_mels + 2]
    down = -slopes[:, :-2] / f_diff[:-1]
    up = slopes[:, 2:] / f_diff[1:]
    fb = torch.clamp(torch.minimum(down, up), min=0.0)
    fb = fb * (2.0 / (f_pts[2:] - f_pts[:-2])).unsqueeze(0)
    return fb.float()


class MelSpectrogram(nn.Module):
    """Magnitude mel spectrogram: wav [B, N] -> mel [B, n_mels, 1 + N // hop]."""

    window: torch.Tensor  # buffers, registered in __init__
    fb: torch.Tensor

    def __init__(
        self,
        sample_rate: int = 16000,
        n_fft: int = 1024,
        win_length: int = 640,
        hop_length: int = 320,
        f_min: float = 10.0,
        f_max: float | None = None,
        n_mels: int = 128,
    ) -> None:
        super().__init__()
        self.n_fft = n_fft
        self.win_length = win_length
        self.hop_length = hop_length
        f_max = float(sample_rate // 2) if f_max is None else float(f_max)
        # Non-persistent: BiCodec checkpoints may carry these as ``mel_transformer.*``; they are
        # derived from the config, so the loader ignores the stored copies.
        self.register_buffer("window", torch.hann_window(win_length, device="cpu"), persistent=False)
        fb = slaney_mel_filterbank(n_fft // 2 + 1, f_min, f_max, n_mels, sample_rate)
        self.register_buffer("fb", fb, persistent=False)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        spec = torch.stft(
            wav,
            n_fft=self.n_fft,
            hop_length=self.hop_length,
            win_length=self.win_length,
            window=self.window,
            center=True,
            pad_mode="reflect",
            normalized=False,
            onesided=True,
            return_complex=True,
        ).abs()  # [B, n_fft // 2 + 1, T]
        return torch.matmul(spec.transpose(-1, -2), self.fb).transpose(-1, -2)  # [B, n_mels, T]
