"""MegaTTS3 part configs: one frozen dataclass per network, read from the release's YAML files.

The official networks hard-code their sizes (``Diffusion()``, ``Whisper()``, ``WavVAE_V3``'s
decoder); the dataclass defaults are exactly those numbers, so the published release needs no extra
key. A random *test* release shrinks the widths with an optional ``fasttts_sizes:`` mapping in the
same YAML file (the official loader ignores unknown keys); every structural constant the data flow
depends on (32 latent channels, 960-sample hop, 302/32 phone/tone rows, 6800 aligner ids, 130 duration
codes) stays. The duration LM is built from its YAML keys, as the official code does.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import yaml

from fasttts.errors import ModelLoadError

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

SIZES_KEY = "fasttts_sizes"
Config = TypeVar("Config", bound="DataclassInstance")


def read_yaml(path: Path) -> dict[str, Any]:
    """A release YAML as a dict (ModelLoadError naming the file when it is missing or not a mapping)."""
    if not path.is_file():
        raise ModelLoadError(f"not a MegaTTS3 directory: {path} is missing")
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ModelLoadError(f"{path} is not a YAML mapping")
    return data


def _sized(cls: type[Config], data: dict[str, Any], where: Path) -> Config:
    sizes = data.get(SIZES_KEY) or {}
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(sizes) - names)
    if unknown:
        raise ModelLoadError(f"{where}: unknown {SIZES_KEY} keys: {', '.join(unknown)}")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in sizes.items()})


@dataclass(frozen=True)
class WavVAEConfig:
    """``WavVAE_V3`` decoder (``tts/modules/wavvae/decoder/wavvae_v3.py``)."""

    latent_dim: int = 32
    proj_channels: int = 320
    """``proj_to_decoder`` width; the latent upsampler halves it (the generator's input, 160)."""
    latent_upsample: int = 4
    ngf: int = 128
    ratios: tuple[int, ...] = (5, 4, 4, 3)
    use_tanh: bool = True
    vae_stride: int = 4
    hop_size: int = 240
    enc_filters: int = 32
    """The withheld encoder (``seanet_encoder.Encoder``): SEANet filters, output width, strides."""
    enc_dim: int = 512
    enc_ratios: tuple[int, ...] = (6, 5, 4, 4, 2)

    @property
    def hop(self) -> int:
        """Samples per latent frame (960 at 24 kHz)."""
        out = self.latent_upsample
        for r in self.ratios:
            out *= r
        return out

    @classmethod
    def load(cls, path: Path) -> WavVAEConfig:
        data = read_yaml(path)
        base = _sized(cls, data, path)
        melgan = data.get("melgan_config") or {}
        # the code's fallback for both keys is 4; the published file says 4 and 240
        return cls(
            **{
                **base.__dict__,
                "use_tanh": bool(melgan.get("use_tanh", True)),
                "vae_stride": int(data.get("vae_stride", 4)),
                "hop_size": int(data.get("hop_size", 4)),
            }
        )


@dataclass(frozen=True)
class DiTConfig:
    """``Diffusion`` (``tts/modules/llm_dit/dit.py``), every size as hard-coded there."""

    hidden: int = 1024
    layers: int = 24
    heads: int = 16
    local_cond_dim: int = 512
    ctx_mask_dim: int = 16
    latent_dim: int = 32
    max_seq_len: int = 16384
    multiple_of: int = 256
    phone_vocab: int = 302
    tone_vocab: int = 32
    ph_heads: int = 4
    ph_layers: int = 6
    ph_kernel: int = 3
    time_freq_dim: int = 256
    win_size: int = 1200
    frames_multiple: int = 8

    @property
    def ffn_hidden(self) -> int:
        """``FeedForward``: 2 × width rounded up to ``multiple_of``."""
        h = 2 * self.hidden
        return self.multiple_of * ((h + self.multiple_of - 1) // self.multiple_of)

    @classmethod
    def load(cls, path: Path) -> DiTConfig:
        data = read_yaml(path)
        if "win_size" not in data:
            raise ModelLoadError(f"{path}: win_size is missing (the prompt padding needs it)")
        base = _sized(cls, data, path)
        return cls(**{**base.__dict__, "win_size": int(data["win_size"]), "frames_multiple": int(data.get("frames_multiple", 8))})


@dataclass(frozen=True)
class AlignerConfig:
    """``Whisper`` (``tts/modules/aligner/whisper_small.py``): Whisper-base sized, hard-coded."""

    n_mels: int = 80
    audio_ctx: int = 3000
    width: int = 512
    heads: int = 8
    encoder_layers: int = 6
    decoder_layers: int = 6
    vocab: int = 6800
    text_ctx: int = 2048
    max_steps: int = 768

    @classmethod
    def load(cls, path: Path) -> AlignerConfig:
        return _sized(cls, read_yaml(path), path)


_DURATION_REQUIRED = (
    "dur_txt_hs",
    "dur_model_hidden_size",
    "dur_model_layers",
    "dur_code_size",
    "dur_model_type",
    "lm_use_enc",
    "encoder_type",
    "ffn_hidden_size",
    "enc_layers",
    "enc_ffn_kernel_size",
    "enc_prenet",
    "enc_pre_ln",
    "num_heads",
    "use_ph_pos_embed",
    "ling_labels",
    "ling_label_dict_size",
    "max_tokens",
)


@dataclass(frozen=True)
class DurationConfig:
    """``ARDurPredictor`` (``tts/modules/ar_dur/ar_dur_predictor.py``), from ``duration_lm/config.yaml``."""

    enc_hidden: int
    dec_hidden: int
    dec_layers: int
    code_size: int
    model_type: str
    ffn_hidden: int
    enc_layers: int
    enc_kernel: int
    enc_prenet: bool
    enc_pre_ln: bool
    enc_heads: int
    ling_labels: tuple[str, ...]
    ling_label_sizes: tuple[int, ...]
    max_tokens: int
    use_char: bool = True
    char_dict_size: int = 4000
    use_pos_embed: bool = False
    use_post_ln: bool = False
    lm_bias: bool = True
    phone_vocab: int = 174
    dec_heads: int = 8
    """Hard-coded in ``RotTransformerDecoderLayer``."""

    @classmethod
    def load(cls, path: Path) -> DurationConfig:
        hp = read_yaml(path)
        missing = [k for k in _DURATION_REQUIRED if k not in hp]
        if missing:
            raise ModelLoadError(f"{path}: missing keys {', '.join(missing)}")
        if not hp.get("use_rot_embed", False):
            raise ModelLoadError(f"{path}: use_rot_embed must be true (the official decoder has no layers otherwise)")
        if not hp["lm_use_enc"] or hp["encoder_type"] != "rel_fft" or not hp["use_ph_pos_embed"]:
            raise ModelLoadError(f"{path}: only lm_use_enc: true, encoder_type: rel_fft, use_ph_pos_embed: true are supported")
        if hp.get("use_bert_input") or hp.get("use_spk_embed") or hp.get("use_spk_id") or hp.get("use_spk_enc"):
            raise ModelLoadError(f"{path}: BERT input and speaker embeddings are not part of the MegaTTS3 release")
        if hp["dur_model_type"] not in ("ar_mse", "ar"):
            raise ModelLoadError(f"{path}: dur_model_type {hp['dur_model_type']!r} is not ar_mse or ar")
        labels = tuple(hp["ling_labels"])
        return cls(
            enc_hidden=int(hp["dur_txt_hs"]),
            dec_hidden=int(hp["dur_model_hidden_size"]),
            dec_layers=int(hp["dur_model_layers"]),
            code_size=int(hp["dur_code_size"]),
            model_type=str(hp["dur_model_type"]),
            ffn_hidden=int(hp["ffn_hidden_size"]),
            enc_layers=int(hp["enc_layers"]),
            enc_kernel=int(hp["enc_ffn_kernel_size"]),
            enc_prenet=bool(hp["enc_prenet"]),
            enc_pre_ln=bool(hp["enc_pre_ln"]),
            enc_heads=int(hp["num_heads"]),
            ling_labels=labels,
            ling_label_sizes=tuple(int(s) for s in hp["ling_label_dict_size"][: len(labels)]),
            max_tokens=int(hp["max_tokens"]),
            use_char=bool(hp.get("mega_use_char", True)),
            char_dict_size=int(hp.get("char_dict_size", 4000)),
            use_pos_embed=bool(hp.get("use_pos_embed", False)),
            use_post_ln=bool(hp.get("use_post_ln", False)),
            lm_bias=bool(hp.get("lm_bias", True)),
        )
