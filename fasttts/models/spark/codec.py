"""Spark-TTS's audio tokenizer and detokenizer (BiCodec + wav2vec2), batched.

Mirrors SparkAudio/Spark-TTS ``sparktts/models/audio_tokenizer.py`` (``BiCodecTokenizer``) and
``sparktts/utils/audio.py`` (volume normalisation), reading a model directory in the official
layout (``config.yaml``, ``BiCodec/``, ``wav2vec2-large-xlsr-53/``). The batch functions are what
the engine's MicroBatcher calls from a worker thread: they pad to a common length, run one
forward under ``torch.inference_mode`` with padding masked out, and trim each item back, so a
batched result equals the single-item one up to float rounding.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
import yaml

from fasttts.errors import InvalidRequestError, ModelLoadError
from fasttts.models.spark.bicodec import BiCodec, WNConv1d, load_bicodec
from fasttts.models.spark.wav2vec import Wav2VecFeatures

GlobalIds = np.ndarray  # int64 [num_global_tokens]
SemanticIds = np.ndarray  # int64 [T], 50 per second


def audio_volume_normalize(audio: np.ndarray, coeff: float = 0.2) -> np.ndarray:
    """The reference's loudness normalisation: bring the 90th-99th percentile of samples above
    0.01 to ``coeff`` (gain clipped to [0.1, 10]), boosting very quiet audio to peak 0.1 first,
    and never exceeding a peak of 1. As in the reference, the percentile is taken from the
    magnitudes *before* the quiet-audio boost."""
    magnitudes = np.sort(np.abs(audio))
    if magnitudes[-1] < 0.1:
        audio = audio / max(magnitudes[-1], 1e-3) * 0.1
    magnitudes = magnitudes[magnitudes > 0.01]
    if magnitudes.shape[0] <= 10:
        return audio
    n = magnitudes.shape[0]
    volume = np.mean(magnitudes[int(0.9 * n) : int(0.99 * n)])
    audio = audio * np.clip(coeff / volume, 0.1, 10)
    peak = np.max(np.abs(audio))
    return audio / peak if peak > 1 else audio


class SparkCodec:
    """Reference audio -> (32 global ids, semantic ids); tokens -> 16 kHz audio."""

    def __init__(
        self,
        top_config: dict[str, Any],
        tokenizer_model: BiCodec,
        detokenizer_model: BiCodec,
        features: Wav2VecFeatures,
    ) -> None:
        self.sample_rate: int = int(top_config["sample_rate"])
        self.hop: int = int(top_config["latent_hop_length"])
        self.volume_normalize: bool = bool(top_config["volume_normalize"])
        self.ref_segment_length: int = int(self.sample_rate * top_config["ref_segment_duration"]) // self.hop * self.hop
        self._tok = tokenizer_model
        self._detok = detokenizer_model
        self._features = features
        spk = tokenizer_model.config.speaker_encoder
        self.semantic_codebook_size: int = tokenizer_model.config.quantizer.codebook_size
        self.global_codebook_size: int = math.prod(spk.fsq_levels)
        self._global_shape = (spk.fsq_num_quantizers, spk.token_num)
        self.num_global_tokens: int = spk.fsq_num_quantizers * spk.token_num

    @classmethod
    def load(
        cls,
        model_dir: Path | str,
        *,
        tokenizer_device: str | torch.device = "cpu",
        detokenizer_device: str | torch.device = "cpu",
        attn_implementation: str = "eager",
    ) -> SparkCodec:
        model_dir = Path(model_dir)
        try:
            top = yaml.safe_load((model_dir / "config.yaml").read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise ModelLoadError(f"cannot read {model_dir / 'config.yaml'}: {exc}") from exc
        needed = ("sample_rate", "ref_segment_duration", "latent_hop_length", "volume_normalize")
        missing = [k for k in needed if not isinstance(top, dict) or k not in top]
        if missing:
            raise ModelLoadError(f"{model_dir / 'config.yaml'} lacks {missing}")
        tok_model = load_bicodec(model_dir / "BiCodec", tokenizer_device)
        if torch.device(tokenizer_device) == torch.device(detokenizer_device):
            detok_model = tok_model
        else:
            detok_model = copy.deepcopy(tok_model).to(detokenizer_device)
        if tok_model.hop_length != top["latent_hop_length"]:
            raise ModelLoadError(f"BiCodec upsamples by {tok_model.hop_length}, config.yaml says latent_hop_length {top['latent_hop_length']}")
        features = Wav2VecFeatures(
            model_dir / "wav2vec2-large-xlsr-53",
            device=tokenizer_device,
            attn_implementation=attn_implementation,
        )
        if features.hidden_size != tok_model.config.encoder.input_channels:
            raise ModelLoadError(f"wav2vec2 hidden size {features.hidden_size} != BiCodec encoder input {tok_model.config.encoder.input_channels}")
        return cls(top, tok_model, detok_model, features)

    # ---------------------------------------------------------------------------- tokenize

    def _prepare(self, audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """-> (normalised wav, reference clip of ``ref_segment_length`` samples)."""
        wav = np.asarray(audio)
        if wav.ndim != 1:
            raise InvalidRequestError(f"reference audio must be mono 1-D, got shape {wav.shape}")
        if not np.all(np.isfinite(wav)):
            raise InvalidRequestError("reference audio contains NaN or infinite samples")
        if self._features.num_frames(wav.shape[0]) < 1:
            raise InvalidRequestError(f"reference audio too short: {wav.shape[0]} samples at {self.sample_rate} Hz")
        wav = wav.astype(np.float64)
        if self.volume_normalize:
            wav = audio_volume_normalize(wav)
        ref = wav
        if ref.shape[0] < self.ref_segment_length:  # tile short audio, as the reference does
            ref = np.tile(ref, self.ref_segment_length // ref.shape[0] + 1)
        return wav.astype(np.float32), ref[: self.ref_segment_length].astype(np.float32)

    def tokenize(self, audio: np.ndarray) -> tuple[GlobalIds, SemanticIds]:
        """Mono 16 kHz float audio -> (global ids [32], semantic ids [(n - 400) // 320 + 1])."""
        return self.tokenize_batch([audio])[0]

    def tokenize_batch(self, audios: Sequence[np.ndarray]) -> list[tuple[GlobalIds, SemanticIds]]:
        prepared = [self._prepare(a) for a in audios]
        device = self._features.device
        with torch.inference_mode():
            feats, lengths = self._features([wav for wav, _ in prepared])  # [B, T, C], [B]
            refs = torch.from_numpy(np.stack([ref for _, ref in prepared])).to(device)
            mask = torch.arange(feats.shape[1], device=device)[None, :] < lengths[:, None]
            semantic_t, global_t = self._tok.tokenize(feats, refs, mask)
        semantic, global_ids = semantic_t.cpu().numpy(), global_t.cpu().numpy()
        return [(global_ids[i].reshape(-1).astype(np.int64), semantic[i, : int(n)].astype(np.int64)) for i, n in enumerate(lengths.tolist())]

    # -------------------------------------------------------------------------- detokenize
    @property
    def detokenizer_device(self) -> torch.device:
        """Where audio is decoded."""
        return next(self._detok.parameters()).device

    def _check_ids(self, global_ids: np.ndarray, semantic_ids: np.ndarray) -> None:
        if global_ids.shape != (self.num_global_tokens,):
            raise ValueError(f"expected {self.num_global_tokens} global ids, got shape {global_ids.shape}")
        if global_ids.min() < 0 or global_ids.max() >= self.global_codebook_size:
            raise ValueError(f"global ids must be in [0, {self.global_codebook_size})")
        if semantic_ids.ndim != 1:
            raise ValueError(f"semantic ids must be 1-D, got shape {semantic_ids.shape}")
        if semantic_ids.size and (semantic_ids.min() < 0 or semantic_ids.max() >= self.semantic_codebook_size):
            raise ValueError(f"semantic ids must be in [0, {self.semantic_codebook_size})")

    def detokenize(self, global_ids: GlobalIds, semantic_ids: SemanticIds) -> np.ndarray:
        """-> float32 audio at 16 kHz, exactly ``len(semantic_ids) * hop`` samples."""
        return self.detokenize_batch([(global_ids, semantic_ids)])[0]

    def detokenize_batch(self, items: Sequence[tuple[GlobalIds, SemanticIds]]) -> list[np.ndarray]:
        pairs = [(np.asarray(g, dtype=np.int64), np.asarray(s, dtype=np.int64)) for g, s in items]
        for g, s in pairs:
            self._check_ids(g, s)
        lengths = [s.shape[0] for _, s in pairs]
        out = [np.zeros(0, dtype=np.float32) for _ in pairs]
        live = [i for i, n in enumerate(lengths) if n > 0]
        if not live:
            return out
        t_max = max(lengths[i] for i in live)
        semantic = np.zeros((len(live), t_max), dtype=np.int64)
        for row, i in enumerate(live):
            semantic[row, : lengths[i]] = pairs[i][1]
        global_ids = np.stack([pairs[i][0].reshape(self._global_shape) for i in live])
        device = cast(WNConv1d, self._detok.decoder.model[0]).weight.device
        with torch.inference_mode():
            sem = torch.from_numpy(semantic).to(device)
            mask = torch.arange(t_max, device=device)[None, :] < torch.tensor([lengths[i] for i in live], device=device)[:, None]
            wav_t = self._detok.detokenize(sem, torch.from_numpy(global_ids).to(device), mask)
            wav = wav_t[:, 0].float().cpu().numpy()  # [B, t_max * hop]
        for row, i in enumerate(live):
            out[i] = np.ascontiguousarray(wav[row, : lengths[i] * self.hop])
        return out
