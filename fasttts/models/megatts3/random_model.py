"""``fasttts random-model mega``: a complete MegaTTS3 release directory with random weights.

The release's layout (five folders), file names, checkpoint container, sub-keys and tensor names;
``full`` has the release's shapes (for benchmarks), ``tiny`` shrinks widths and depths through the
configs' ``fasttts_sizes`` keys and the duration LM's own YAML keys, keeping every structural
constant. Weights are random but scaled like trained ones (embeddings with std dim^-0.5, a duration
head biased to a few frames per phone) so the pipeline runs end to end. Also
:func:`write_random_voice`: a reference ``.wav`` and its ``.npy`` latent with the release's length rule.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
import yaml
from torch import nn

from fasttts.models.megatts3.aligner import Aligner
from fasttts.models.megatts3.config import SIZES_KEY, AlignerConfig, DiTConfig, DurationConfig, WavVAEConfig
from fasttts.models.megatts3.dit import Diffusion
from fasttts.models.megatts3.duration import DurationLM
from fasttts.models.megatts3.g2p import SPEECH_SPAN
from fasttts.models.megatts3.loader import SUB_KEYS
from fasttts.models.megatts3.wavvae import WavVAEDecoder
from fasttts.models.random_llm import MEGA_G2P_ADDED_TOKENS, SPARK_QWEN2_FULL, SPARK_QWEN2_TINY, write_random_llm

SAMPLE_RATE = 24000
FULL_RESERVED = 17200
"""``<Reserved_TTS_0>`` … ``<Reserved_TTS_17199>`` as in the release's tokenizer."""

_DURATION_FULL: dict[str, Any] = {
    "dur_txt_hs": 512,
    "hidden_size": 512,
    "dur_model_hidden_size": 512,
    "dur_model_layers": 8,
    "dur_code_size": 128,
    "dur_model_type": "ar_mse",
    "use_rot_embed": True,
    "lm_use_enc": True,
    "encoder_type": "rel_fft",
    "ffn_hidden_size": 1024,
    "enc_layers": 4,
    "enc_ffn_kernel_size": 3,
    "enc_prenet": True,
    "enc_pre_ln": True,
    "num_heads": 2,
    "dropout": 0.0,
    "use_ph_pos_embed": True,
    "mega_use_char": True,
    "char_dict_size": 15000,
    "use_bert_input": False,
    "ling_labels": ["tone"],
    "ling_label_dict_size": [20, 4, 5, 2, 3, 3, 3, 6, 15],
    "use_spk_embed": False,
    "use_spk_id": False,
    "use_spk_enc": False,
    "use_post_ln": False,
    "lm_bias": True,
    "use_pos_embed": False,
    "max_tokens": 40000,
}
_DURATION_TINY = {
    **_DURATION_FULL,
    "dur_txt_hs": 64,
    "hidden_size": 64,
    "dur_model_hidden_size": 64,
    "dur_model_layers": 2,
    "ffn_hidden_size": 128,
    "enc_layers": 2,
    "char_dict_size": 64,
}
TINY_SIZES: dict[str, dict[str, Any]] = {
    "diffusion_transformer": {"hidden": 64, "layers": 2, "heads": 4, "local_cond_dim": 32, "ph_heads": 2, "ph_layers": 2},
    "aligner_lm": {"width": 64, "heads": 4, "encoder_layers": 2, "decoder_layers": 2},
    "wavvae": {"proj_channels": 32, "ngf": 4, "enc_filters": 4, "enc_dim": 32},
}
_WAVVAE_YAML = {
    "vae_stride": 4,
    "hop_size": 240,
    "win_size": 1200,
    "audio_sample_rate": 24000,
    "melgan_config": {"use_tanh": True, "frame_shift": 240, "up_sample": [5, 4, 4, 3], "sampling_rate": 24000},
}


def _randomize(model: nn.Module, gen: torch.Generator) -> None:
    """Trained-like scales: linear/conv weights ~ N(0, 1/fan_in), embeddings ~ N(0, 1/dim), norms ~1,
    biases small, weight-norm gains 1."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            leaf = name.rsplit(".", 1)[-1]
            if leaf in ("weight_g", "gamma") or (leaf == "weight" and p.ndim == 1):
                p.copy_(1.0 + 0.05 * torch.randn(p.shape, generator=gen))
            elif leaf in ("bias", "beta") or p.ndim == 1:
                p.copy_(0.02 * torch.randn(p.shape, generator=gen))
            else:
                fan = p.shape[-1] if p.ndim == 2 else math.prod(p.shape[1:])
                p.copy_(torch.randn(p.shape, generator=gen) / math.sqrt(max(fan, 1)))


def _save(model: nn.Module, path: Path, sub_key: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": {sub_key: {k: v.contiguous() for k, v in model.state_dict().items()}}}, path)


def _write_yaml(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


def write_random_mega(model_dir: str | Path, *, size: str = "tiny", seed: int = 0, full_wavvae: bool = False) -> Path:
    """Write a random ``tiny`` (a few MB) or ``full`` (release shapes, ≈4.3 GB) MegaTTS3 directory.
    ``full_wavvae`` writes ``wavvae/model_only_last.ckpt`` (encoder and decoder) instead of
    the published decoder-only ``decoder.ckpt``."""
    if size not in ("tiny", "full"):
        raise ValueError(f"size must be 'tiny' or 'full', not {size!r}")
    root = Path(model_dir)
    root.mkdir(parents=True, exist_ok=True)
    tiny = size == "tiny"
    sizes = TINY_SIZES if tiny else {k: {} for k in TINY_SIZES}
    gen = torch.Generator().manual_seed(seed)

    def extra(part: str) -> dict[str, Any]:
        return {SIZES_KEY: sizes[part]} if sizes[part] else {}

    _write_yaml(
        root / "diffusion_transformer" / "config.yaml",
        {"audio_sample_rate": SAMPLE_RATE, "win_size": 1200, "frames_multiple": 8, **extra("diffusion_transformer")},
    )
    _write_yaml(root / "aligner_lm" / "config.yaml", {"win_size": 1200, **extra("aligner_lm")})
    _write_yaml(root / "duration_lm" / "config.yaml", _DURATION_TINY if tiny else _DURATION_FULL)
    _write_yaml(root / "wavvae" / "config.yaml", {**_WAVVAE_YAML, **extra("wavvae")})

    dit = Diffusion(DiTConfig.load(root / "diffusion_transformer" / "config.yaml"))
    _randomize(dit, gen)
    _save(dit, root / "diffusion_transformer" / "model_only_last.ckpt", SUB_KEYS["diffusion_transformer"])
    del dit
    aligner = Aligner(AlignerConfig.load(root / "aligner_lm" / "config.yaml"))
    _randomize(aligner, gen)
    _save(aligner, root / "aligner_lm" / "model_only_last.ckpt", SUB_KEYS["aligner_lm"])
    del aligner
    duration = DurationLM(DurationConfig.load(root / "duration_lm" / "config.yaml"))
    _randomize(duration, gen)
    head = duration.project_out_dim
    assert isinstance(head, nn.Sequential)  # ar_mse in both sizes: Linear, then Softplus
    linear = cast(nn.Linear, head[0])
    with torch.no_grad():  # a few frames per phone, as a trained model predicts
        linear.weight.mul_(0.1)
        linear.bias.fill_(6.0)
    _save(duration, root / "duration_lm" / "model_only_last.ckpt", SUB_KEYS["duration_lm"])
    del duration
    vae = WavVAEDecoder(WavVAEConfig.load(root / "wavvae" / "config.yaml"), with_encoder=full_wavvae)
    _randomize(vae, gen)
    _save(vae, root / "wavvae" / ("model_only_last.ckpt" if full_wavvae else "decoder.ckpt"), SUB_KEYS["wavvae"])
    write_g2p(root / "g2p", tiny=tiny, seed=seed)
    (root / "config.json").write_text('{"name": "this is a file used for counting downloads"}')
    return root


def write_g2p(out: Path, *, tiny: bool, seed: int, size: dict[str, Any] | None = None) -> Path:
    """The g2p Qwen2 directory: ``<BOT>``, ``<BOS>`` and the ``<Reserved_TTS_k>`` speech tokens
    (special) after the base vocabulary; ``full`` writes the release's tokenizer (Qwen2.5 BPE,
    every added token at its release id), ``tiny`` a small BPE with the 802 speech ids it needs.
    ``size`` overrides the Qwen2 shape keys (e.g. head size 64 for vLLM's CPU attention, which
    refuses the tiny default's 16)."""
    added = MEGA_G2P_ADDED_TOKENS[: 2 + SPEECH_SPAN] if tiny else MEGA_G2P_ADDED_TOKENS
    size = {**(SPARK_QWEN2_TINY if tiny else {**SPARK_QWEN2_FULL, "vocab_size": 168896}), **(size or {})}
    return write_random_llm(out, arch="qwen2", size=size, added_tokens=added, seed=seed, release_tokenizer=not tiny, added_special=True)


def write_random_voice(directory: str | Path, *, seconds: float = 1.5, seed: int = 0, name: str = "voice", text: str | None = None) -> tuple[Path, Path]:
    """``name.wav`` (24 kHz, a voiced-sounding stand-in) and ``name.npy`` ([1, P, 32] float32 with
    P = F_ref / 4 of the padded reference, the release's rule) in ``directory``; ``name.txt`` too
    when ``text`` is given. Returns the wav and npy paths."""
    from fasttts.audio.encode import encode_audio
    from fasttts.models.megatts3.frontend import prompt_frames

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    n = int(seconds * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    f0 = 110 + 40 * rng.random()
    wav = sum(np.sin(2 * np.pi * f0 * k * t + rng.random() * 6) / k for k in range(1, 8)) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))
    wav = (0.2 * wav / np.abs(wav).max() + 0.01 * rng.standard_normal(n)).astype(np.float32)
    wav_path, npy_path = out / f"{name}.wav", out / f"{name}.npy"
    wav_path.write_bytes(encode_audio(wav, SAMPLE_RATE, "wav"))
    frames = prompt_frames(n, 1200) // 4
    np.save(npy_path, rng.standard_normal((1, frames, 32)).astype(np.float32))
    if text:
        (out / f"{name}.txt").write_text(text, encoding="utf-8")
    return wav_path, npy_path
