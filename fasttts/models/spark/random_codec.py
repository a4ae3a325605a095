"""Random-weight Spark-TTS codec directories in the official on-disk format.

Writes everything of a ``Spark-TTS-0.5B`` directory except ``LLM/``: the top-level
``config.yaml``, ``BiCodec/`` (config.yaml + model.safetensors with weight-norm'd convolutions
stored as ``weight_g``/``weight_v`` and the mel buffers, as the official checkpoint holds them)
and ``wav2vec2-large-xlsr-53/`` (a ``Wav2Vec2ForPreTraining`` state dict in pytorch_model.bin).
``full`` uses the official shapes; ``tiny`` keeps the structure and every size the token
interface depends on (semantic codebook 8192, FSQ levels, 32 global tokens, hop 320) and shrinks
the rest. The initialisation is chosen so that decoding random tokens gives finite, audible audio.
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any, Literal, cast

import torch
import yaml
from safetensors.torch import save_file
from torch import nn
from transformers import Wav2Vec2Config, Wav2Vec2ForPreTraining

from fasttts.models.spark import bicodec as bc

Size = Literal["tiny", "full"]
Wav2VecWeights = Literal["bin", "safetensors"]

TOP_CONFIG: dict[str, Any] = {
    "highpass_cutoff_freq": 40,
    "sample_rate": 16000,
    "segment_duration": 2.4,
    "max_val_duration": 12,
    "latent_hop_length": 320,
    "ref_segment_duration": 6,
    "volume_normalize": True,
}

OFFICIAL_BICODEC: dict[str, Any] = {
    "mel_params": {
        "sample_rate": 16000,
        "n_fft": 1024,
        "win_length": 640,
        "hop_length": 320,
        "mel_fmin": 10,
        "mel_fmax": None,
        "num_mels": 128,
    },
    "encoder": {
        "input_channels": 1024,
        "vocos_dim": 384,
        "vocos_intermediate_dim": 2048,
        "vocos_num_layers": 12,
        "out_channels": 1024,
        "sample_ratios": [1, 1],
    },
    "decoder": {
        "input_channel": 1024,
        "channels": 1536,
        "rates": [8, 5, 4, 2],
        "kernel_sizes": [16, 11, 8, 4],
    },
    "quantizer": {
        "input_dim": 1024,
        "codebook_size": 8192,
        "codebook_dim": 8,
        "commitment": 0.25,
        "codebook_loss_weight": 2.0,
        "use_l2_normlize": True,
        "threshold_ema_dead_code": 0.2,
    },
    "speaker_encoder": {
        "input_dim": 128,
        "out_dim": 1024,
        "latent_dim": 128,
        "token_num": 32,
        "fsq_levels": [4, 4, 4, 4, 4, 4],
        "fsq_num_quantizers": 1,
    },
    "prenet": {
        "input_channels": 1024,
        "vocos_dim": 384,
        "vocos_intermediate_dim": 2048,
        "vocos_num_layers": 12,
        "out_channels": 1024,
        "condition_dim": 1024,
        "sample_ratios": [1, 1],
        "use_tanh_at_final": False,
    },
    "postnet": {
        "input_channels": 1024,
        "vocos_dim": 384,
        "vocos_intermediate_dim": 2048,
        "vocos_num_layers": 6,
        "out_channels": 1024,
        "use_tanh_at_final": False,
    },
}

OFFICIAL_WAV2VEC: dict[str, Any] = {
    "hidden_size": 1024,
    "num_hidden_layers": 24,
    "num_attention_heads": 16,
    "intermediate_size": 4096,
    "conv_dim": [512] * 7,
    "conv_kernel": [10, 3, 3, 3, 3, 2, 2],
    "conv_stride": [5, 2, 2, 2, 2, 2, 2],
    "conv_bias": True,
    "feat_extract_norm": "layer",
    "do_stable_layer_norm": True,
    "num_conv_pos_embeddings": 128,
    "num_conv_pos_embedding_groups": 16,
    "codevector_dim": 768,
    "proj_codevector_dim": 768,
    "num_codevector_groups": 2,
    "num_codevectors_per_group": 320,
    "layerdrop": 0.1,
    "mask_time_prob": 0.075,
    "feat_proj_dropout": 0.1,
    "hidden_dropout": 0.1,
    "attention_dropout": 0.1,
    "activation_dropout": 0.0,
    "vocab_size": 32,
}

PREPROCESSOR: dict[str, Any] = {
    "do_normalize": True,
    "feature_extractor_type": "Wav2Vec2FeatureExtractor",
    "feature_size": 1,
    "padding_side": "right",
    "padding_value": 0,
    "return_attention_mask": True,
    "sampling_rate": 16000,
}

TINY_HIDDEN = 32  # wav2vec2 hidden size, also BiCodec's feature width in the tiny model


def bicodec_config(size: Size) -> dict[str, Any]:
    """The ``audio_tokenizer`` section for ``size`` (same keys as the official file)."""
    cfg = copy.deepcopy(OFFICIAL_BICODEC)
    if size == "full":
        return cfg
    h, d = TINY_HIDDEN, 32
    vocos = {"vocos_dim": d, "vocos_intermediate_dim": 64, "vocos_num_layers": 2}
    cfg["encoder"].update(input_channels=h, out_channels=d, **vocos)
    cfg["quantizer"].update(input_dim=d)
    cfg["speaker_encoder"].update(out_dim=d, latent_dim=16)
    cfg["prenet"].update(input_channels=d, out_channels=d, condition_dim=d, **vocos)
    cfg["postnet"].update(input_channels=d, out_channels=h, **{**vocos, "vocos_num_layers": 1})
    cfg["decoder"].update(input_channel=d, channels=64)
    return cfg


def wav2vec_config(size: Size) -> Wav2Vec2Config:
    kwargs = dict(OFFICIAL_WAV2VEC)
    if size == "tiny":
        # features average hidden states 11, 14, 16: 17 layers keep state 16 a raw layer
        # output (as in the 24-layer original) and exercise the loader's layer truncation
        kwargs.update(
            hidden_size=TINY_HIDDEN,
            num_hidden_layers=17,
            num_attention_heads=2,
            intermediate_size=64,
            conv_dim=[32] * 7,
            num_conv_pos_embeddings=16,
            num_conv_pos_embedding_groups=2,
            codevector_dim=16,
            proj_codevector_dim=16,
            num_codevectors_per_group=8,
        )
    config = Wav2Vec2Config(**kwargs)
    config.architectures = ["Wav2Vec2ForPreTraining"]
    return config


# ----------------------------------------------------------------------------- initialisation


def _fan_in(m: nn.Conv1d | nn.ConvTranspose1d | nn.Linear) -> float:
    if isinstance(m, nn.ConvTranspose1d):
        return m.in_channels * m.kernel_size[0] / m.stride[0]
    if isinstance(m, nn.Conv1d):
        return m.in_channels / m.groups * m.kernel_size[0]
    return float(m.in_features)


@torch.no_grad()
def init_bicodec(model: bc.BiCodec, generator: torch.Generator) -> None:
    """Variance-preserving random weights; layer scales and AdaLN kept near identity so deep
    stacks neither explode nor collapse to silence."""
    for m in model.modules():
        if isinstance(m, (nn.Conv1d, nn.ConvTranspose1d, nn.Linear)):
            m.weight.normal_(0.0, 1.0 / math.sqrt(_fan_in(m)), generator=generator)
            if m.bias is not None:
                m.bias.zero_()
        elif isinstance(m, nn.Embedding):
            m.weight.normal_(0.0, 1.0, generator=generator)
        elif isinstance(m, bc.ConvNeXtBlock):
            m.gamma.fill_(0.1)
        elif isinstance(m, bc.PerceiverResampler):
            m.latents.normal_(0.0, 1.0, generator=generator)
    for m in model.modules():  # after the generic pass
        if isinstance(m, bc.AdaLayerNorm):  # scale ~1, shift ~0
            m.scale.weight.normal_(0.0, 0.02, generator=generator)
            m.scale.bias.fill_(1.0)
            m.shift.weight.normal_(0.0, 0.02, generator=generator)
        elif isinstance(m, bc.ResidualUnit):  # near-identity residual branches
            cast(bc.WNConv1d, m.block[3]).weight.mul_(0.1)
    _calibrate_output(model, generator)


@torch.no_grad()
def _calibrate_output(model: bc.BiCodec, generator: torch.Generator, target_std: float = 0.25) -> None:
    """Scale the last convolution so random tokens decode to a pre-tanh std of ``target_std``
    (audible, far from clipping)."""
    cfg = model.config
    spk = cfg.speaker_encoder
    semantic = torch.randint(0, cfg.quantizer.codebook_size, (2, 25), generator=generator)
    global_shape = (2, spk.fsq_num_quantizers, spk.token_num)
    global_ids = torch.randint(0, math.prod(spk.fsq_levels), global_shape, generator=generator)
    final_conv = cast(bc.WNConv1d, model.decoder.model[-2])
    captured: list[torch.Tensor] = []
    handle = final_conv.register_forward_hook(lambda _m, _i, out: captured.append(out))
    model.eval()
    model.detokenize(semantic, global_ids)
    handle.remove()
    std = captured[0].std().item()
    final_conv.weight.mul_(target_std / std)
    if final_conv.bias is not None:
        final_conv.bias.zero_()


def _checkpoint_state(model: bc.BiCodec) -> dict[str, torch.Tensor]:
    """State dict in the official naming: weight norm split into g (per-row norm) and v."""
    wn = bc.weight_norm_modules(model)
    state: dict[str, torch.Tensor] = {}
    for name, t in model.state_dict().items():
        module, _, leaf = name.rpartition(".")
        if module in wn and leaf == "weight":
            state[f"{module}.weight_g"] = t.flatten(1).norm(dim=1).view(-1, *([1] * (t.dim() - 1)))
            state[f"{module}.weight_v"] = t
        else:
            state[name] = t
    mel = model.mel_transformer
    state["mel_transformer.spectrogram.window"] = mel.window
    state["mel_transformer.mel_scale.fb"] = mel.fb
    return {k: v.detach().contiguous().clone() for k, v in state.items()}


# ------------------------------------------------------------------------------------- writers


def write_bicodec(out_dir: Path, size: Size, seed: int) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    cfg_dict = bicodec_config(size)
    (out_dir / "config.yaml").write_text(yaml.safe_dump({"audio_tokenizer": cfg_dict}, sort_keys=False))
    model = bc.BiCodec(bc.BiCodecConfig.from_dict(cfg_dict))
    init_bicodec(model, torch.Generator().manual_seed(seed))
    save_file(_checkpoint_state(model), str(out_dir / "model.safetensors"))


def write_wav2vec(out_dir: Path, size: Size, seed: int, weights: Wav2VecWeights = "bin") -> None:
    """``weights="bin"``: ``pytorch_model.bin`` with the old weight-norm names, as the official
    release ships it; ``"safetensors"``: ``model.safetensors`` as ``save_pretrained`` writes it
    today (and as converted mirrors ship it)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    config = wav2vec_config(size)
    with torch.random.fork_rng(devices=[]):  # transformers initialises from the global RNG
        torch.manual_seed(seed)
        model = Wav2Vec2ForPreTraining(config)
    if weights == "safetensors":
        model.save_pretrained(out_dir, safe_serialization=True)
    else:
        state = {}
        for name, t in model.state_dict().items():  # official files use the old weight-norm names
            name = name.replace("parametrizations.weight.original0", "weight_g")
            name = name.replace("parametrizations.weight.original1", "weight_v")
            state[name] = t.detach().contiguous().clone()
        torch.save(state, out_dir / "pytorch_model.bin")
    (out_dir / "config.json").write_text(config.to_json_string())
    (out_dir / "preprocessor_config.json").write_text(json.dumps(PREPROCESSOR, indent=2) + "\n")


def write_random_codec(model_dir: Path, size: Size, seed: int, wav2vec_weights: Wav2VecWeights = "bin") -> None:
    """Write config.yaml, BiCodec/ and wav2vec2-large-xlsr-53/ under ``model_dir`` (not LLM/)."""
    if size not in ("tiny", "full"):
        raise ValueError(f"size must be 'tiny' or 'full', not {size!r}")
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    (model_dir / "config.yaml").write_text(yaml.safe_dump(TOP_CONFIG, sort_keys=False))
    write_bicodec(model_dir / "BiCodec", size, seed)
    write_wav2vec(model_dir / "wav2vec2-large-xlsr-53", size, seed + 1, wav2vec_weights)
