"""MegaTTS3's reference preprocessing and alignment bookkeeping, without librosa/whisper/pyloudnorm.

Equal to ``MegaTTS3DiTInfer.preprocess`` and ``align`` of ``tts/infer_cli.py`` /
``tts/frontend_function.py``:

- padding: to L mod ``win_size`` = ``win_size`` − 1, then 12,000 zeros (0.5 s);
- the aligner's input: 16 kHz (soxr HQ, as librosa's default) Whisper log-mel
  (``whisper.log_mel_spectrogram``: n_fft 400, hop 160, Slaney mel filters, log10, max − 8 floor,
  (x + 4)/4), cut to a multiple of 8 frames;
- BS.1770 integrated loudness (``pyloudnorm.Meter``: K-weighting, 0.4 s blocks, 75 % overlap,
  −70 LUFS absolute and −10 LU relative gates) and ``normalize.loudness``;
- the alignment tokens → phones, tones and frame durations (``split_ph_timestamp`` and the
  shortfall/overshoot correction, kept from driving any duration below zero).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.signal
import torch

from fasttts.audio.resample import resample
from fasttts.models.megatts3.aligner import TIME0
from fasttts.models.megatts3.g2p import split_merged

SAMPLE_RATE = 24000
ALIGN_RATE = 16000
TAIL_PAD = 12000
N_FFT, HOP, N_MELS = 400, 160, 80
FRAMES_MULTIPLE = 8


def pad_reference(wav: np.ndarray, win_size: int) -> np.ndarray:
    """The reference's padding before alignment, loudness and latent lengths."""
    wav = np.asarray(wav, dtype=np.float32)
    rest = len(wav) % win_size
    if rest < win_size - 1:
        wav = np.pad(wav, (0, win_size - 1 - rest))
    return np.pad(wav, (0, TAIL_PAD)).astype(np.float32)


def _mel_filters(sr: int = ALIGN_RATE, n_fft: int = N_FFT, n_mels: int = N_MELS) -> np.ndarray:
    """librosa's ``filters.mel`` (Slaney scale and area normalisation), as Whisper ships it."""

    def hz_to_mel(f: float | np.ndarray) -> np.ndarray:
        f = np.asarray(f, dtype=np.float64)
        mel = f / (200.0 / 3)
        log_t = f >= 1000.0
        return np.where(log_t, 15.0 + np.log(np.maximum(f, 1e-10) / 1000.0) / (np.log(6.4) / 27.0), mel)

    def mel_to_hz(m: np.ndarray) -> np.ndarray:
        hz = (200.0 / 3) * m
        return np.where(m >= 15.0, 1000.0 * np.exp((np.log(6.4) / 27.0) * (m - 15.0)), hz)

    fft_freqs = np.fft.rfftfreq(n_fft, 1.0 / sr)
    mel_f = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(sr / 2.0), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights: np.ndarray = np.maximum(0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_f[2 : n_mels + 2] - mel_f[:n_mels]))[:, None]
    return weights.astype(np.float32)


_FILTERS = _mel_filters()


def whisper_log_mel(wav16k: np.ndarray) -> torch.Tensor:
    """[80, ⌊n/160⌋] Whisper log-mel of 16 kHz audio."""
    audio = torch.from_numpy(np.asarray(wav16k, dtype=np.float32))
    stft = torch.stft(audio, N_FFT, HOP, window=torch.hann_window(N_FFT), return_complex=True)
    power = stft[..., :-1].abs() ** 2
    spec = torch.from_numpy(_FILTERS) @ power
    log_spec = torch.clamp(spec, min=1e-10).log10()
    log_spec = torch.maximum(log_spec, log_spec.max() - 8.0)
    return (log_spec + 4.0) / 4.0


def to_align_rate(padded: np.ndarray) -> np.ndarray:
    """24 → 16 kHz as ``librosa.resample`` (soxr HQ, length fixed to ⌈n · 2/3⌉)."""
    out = resample(padded, SAMPLE_RATE, ALIGN_RATE)
    n = -(-len(padded) * ALIGN_RATE // SAMPLE_RATE)
    return np.pad(out, (0, max(0, n - len(out))))[:n]


def aligner_mel(padded: np.ndarray) -> torch.Tensor:
    """[1, 80, F_ref] aligner input of the padded 24 kHz reference (F_ref a multiple of 8)."""
    mel = whisper_log_mel(to_align_rate(padded))
    frames = mel.shape[1] // FRAMES_MULTIPLE * FRAMES_MULTIPLE
    return mel[None, :, :frames]


def prompt_frames(num_samples: int, win_size: int) -> int:
    """F_ref for a reference of ``num_samples`` at 24 kHz (the ``.npy`` holds F_ref/4 frames)."""
    padded = len(pad_reference(np.zeros(num_samples, np.float32), win_size))
    n16 = -(-padded * ALIGN_RATE // SAMPLE_RATE)
    return n16 // HOP // FRAMES_MULTIPLE * FRAMES_MULTIPLE


# ----------------------------------------------------------------------------- loudness
def _biquad(kind: str, gain_db: float, q: float, fc: float, rate: int) -> tuple[np.ndarray, np.ndarray]:
    a_ = 10 ** (gain_db / 40.0)
    w0 = 2.0 * np.pi * (fc / rate)
    alpha = np.sin(w0) / (2.0 * q)
    cw = np.cos(w0)
    if kind == "high_shelf":
        sa = 2.0 * np.sqrt(a_) * alpha
        b = [a_ * ((a_ + 1) + (a_ - 1) * cw + sa), -2 * a_ * ((a_ - 1) + (a_ + 1) * cw), a_ * ((a_ + 1) + (a_ - 1) * cw - sa)]
        a = [(a_ + 1) - (a_ - 1) * cw + sa, 2 * ((a_ - 1) - (a_ + 1) * cw), (a_ + 1) - (a_ - 1) * cw - sa]
    else:  # high_pass
        b = [(1 + cw) / 2, -(1 + cw), (1 + cw) / 2]
        a = [1 + alpha, -2 * cw, 1 - alpha]
    return np.array(b) / a[0], np.array(a) / a[0]


def integrated_loudness(wav: np.ndarray, rate: int = SAMPLE_RATE) -> float:
    """BS.1770-4 integrated loudness (LUFS) of mono audio, as ``pyloudnorm.Meter(rate)``."""
    x = np.asarray(wav, dtype=np.float64)
    for kind, g, q, fc in (("high_shelf", 4.0, 1 / np.sqrt(2), 1500.0), ("high_pass", 0.0, 0.5, 38.0)):
        b, a = _biquad(kind, g, q, fc, rate)
        x = scipy.signal.lfilter(b, a, x)
    block, step = 0.4, 0.25
    n_blocks = int(np.round(((len(x) / rate) - block) / (block * step))) + 1
    z = np.array([np.sum(np.square(x[int(block * j * step * rate) : int(block * (j * step + 1) * rate)])) / (block * rate) for j in range(max(n_blocks, 0))])
    with np.errstate(divide="ignore"):
        levels = -0.691 + 10.0 * np.log10(z)
        gated = z[levels >= -70.0]
        if not len(gated):
            return float("-inf")
        relative = -0.691 + 10.0 * np.log10(np.mean(gated)) - 10.0
        final = z[(levels > relative) & (levels > -70.0)]
        mean = np.mean(final) if len(final) else 0.0
        return float(-0.691 + 10.0 * np.log10(mean))


def match_loudness(wav: np.ndarray, target_lufs: float) -> np.ndarray:
    """Scale to the reference's loudness (``pyln.normalize.loudness``), then keep the peak under 1
    (rescaled to 0.95 when it reaches 1), as the reference's post-processing."""
    current = integrated_loudness(wav)
    if np.isfinite(current) and np.isfinite(target_lufs):
        wav = wav * (10.0 ** ((target_lufs - current) / 20.0))
    peak = float(np.abs(wav).max()) if len(wav) else 0.0
    if peak >= 1:
        wav = wav / peak * 0.95
    return wav.astype(np.float32)


# ----------------------------------------------------------------------------- alignment
def split_alignment(tokens: Sequence[int], total_frames: int) -> tuple[list[int], list[int], list[int]]:
    """Aligner output (merged phone, end-time token)* → phones, tones, durations summing to
    ``total_frames``: a shortfall goes to the last phone; an overshoot takes one frame at a time
    from each phone in turn (phones already at zero are skipped, unlike the reference)."""
    merged = [int(t) for t in tokens[0::2]]
    ends = [int(t) - TIME0 for t in tokens[1::2]]
    merged = merged[: len(ends)]
    phones, tones = split_merged(merged)
    durs, prev = [], 0
    for end in ends:
        durs.append(end - prev)
        prev = end
    total = sum(durs)
    if durs and total < total_frames:
        durs[-1] += total_frames - total
    excess = total - total_frames
    while excess > 0 and any(d > 0 for d in durs):
        for i in range(len(durs)):
            if excess == 0:
                break
            if durs[i] > 0:
                durs[i] -= 1
                excess -= 1
    return phones, tones, durs
