"""BiCodec, Spark-TTS's audio codec: wav2vec2 features -> semantic tokens, mel -> global tokens,
and back to 16 kHz audio.

Must match the official reference, SparkAudio/Spark-TTS ``sparktts/models/bicodec.py`` and the
modules it builds (``modules/encoder_decoder/{feat_encoder,feat_decoder,wave_generator}.py``,
``modules/vq/factorized_vector_quantize.py``, ``modules/fsq/{residual_fsq,
finite_scalar_quantization}.py``, ``modules/speaker/{speaker_encoder,ecapa_tdnn,
perceiver_encoder,pooling_layers}.py``, ``modules/blocks/{vocos,samper,layers}.py``): same module
tree (so the checkpoint's tensor names line up one to one) and the same maths. Only inference is
implemented; parts used only in training (postnet, x-vector pooling head, VQ usage statistics)
exist as parameters so the checkpoint loads strictly.

Reads top-down: config (from ``BiCodec/config.yaml``), blocks, model, loader. Shapes: B batch,
T frames (50 Hz), N samples (16 kHz). Optional ``mask`` arguments ([B, 1, T], 1 = real frame)
zero padded frames before every temporal convolution, so an item padded inside a batch gets the
same output as when run alone (where convolutions see zero padding at its end).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, cast

import torch
import torch.nn.functional as F
import yaml
from torch import nn

from fasttts.checkpoint import check_tensors, read_safetensors
from fasttts.errors import ModelLoadError
from fasttts.models.spark.mel import MelSpectrogram

# ----------------------------------------------------------------------------------- config


@dataclass
class MelParams:
    sample_rate: int = 16000
    n_fft: int = 1024
    win_length: int = 640
    hop_length: int = 320
    mel_fmin: float = 10
    mel_fmax: float | None = None
    num_mels: int = 128


@dataclass
class EncoderConfig:
    input_channels: int = 1024  # wav2vec2 hidden size
    vocos_dim: int = 384
    vocos_intermediate_dim: int = 2048
    vocos_num_layers: int = 12
    out_channels: int = 1024
    sample_ratios: list[int] = field(default_factory=lambda: [1, 1])


@dataclass
class WaveGeneratorConfig:
    input_channel: int = 1024
    channels: int = 1536
    rates: list[int] = field(default_factory=lambda: [8, 5, 4, 2])
    kernel_sizes: list[int] = field(default_factory=lambda: [16, 11, 8, 4])


@dataclass
class QuantizerConfig:
    input_dim: int = 1024
    codebook_size: int = 8192
    codebook_dim: int = 8
    # Training-only settings, kept so the config round-trips.
    commitment: float = 0.25
    codebook_loss_weight: float = 2.0
    use_l2_normlize: bool = True
    threshold_ema_dead_code: float = 0.2


@dataclass
class SpeakerEncoderConfig:
    input_dim: int = 128  # mel bins
    out_dim: int = 1024  # d-vector size
    latent_dim: int = 128
    token_num: int = 32
    fsq_levels: list[int] = field(default_factory=lambda: [4, 4, 4, 4, 4, 4])
    fsq_num_quantizers: int = 1


@dataclass
class FeatDecoderConfig:
    input_channels: int = 1024
    vocos_dim: int = 384
    vocos_intermediate_dim: int = 2048
    vocos_num_layers: int = 12
    out_channels: int = 1024
    condition_dim: int | None = None
    sample_ratios: list[int] = field(default_factory=lambda: [1, 1])
    use_tanh_at_final: bool = False


@dataclass
class BiCodecConfig:
    mel_params: MelParams
    encoder: EncoderConfig
    decoder: WaveGeneratorConfig
    quantizer: QuantizerConfig
    speaker_encoder: SpeakerEncoderConfig
    prenet: FeatDecoderConfig
    postnet: FeatDecoderConfig

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BiCodecConfig:
        """Build from the ``audio_tokenizer`` section of ``BiCodec/config.yaml``."""
        sections: dict[str, Any] = {}
        for f in fields(cls):
            section_cls = {
                "mel_params": MelParams,
                "encoder": EncoderConfig,
                "decoder": WaveGeneratorConfig,
                "quantizer": QuantizerConfig,
                "speaker_encoder": SpeakerEncoderConfig,
                "prenet": FeatDecoderConfig,
                "postnet": FeatDecoderConfig,
            }[f.name]
            values = d.get(f.name)
            if not isinstance(values, dict):
                raise ModelLoadError(f"BiCodec config: section '{f.name}' is missing")
            known = {sf.name for sf in fields(section_cls)}
            unknown = sorted(set(values) - known)
            if unknown:
                raise ModelLoadError(f"BiCodec config: unknown keys in '{f.name}': {unknown}")
            sections[f.name] = section_cls(**values)
        return cls(**sections)

    @classmethod
    def from_yaml(cls, path: Path) -> BiCodecConfig:
        try:
            data = yaml.safe_load(Path(path).read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise ModelLoadError(f"cannot read BiCodec config {path}: {exc}") from exc
        if not isinstance(data, dict) or "audio_tokenizer" not in data:
            raise ModelLoadError(f"BiCodec config {path} has no 'audio_tokenizer' section")
        return cls.from_dict(data["audio_tokenizer"])


# ------------------------------------------------------------------------------ blocks: vocos


def _masked(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    return x if mask is None else x * mask


class AdaLayerNorm(nn.Module):
    """LayerNorm whose scale and shift are predicted from a condition vector (the d-vector)."""

    def __init__(self, condition_dim: int, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.dim, self.eps = dim, eps
        self.scale = nn.Linear(condition_dim, dim)
        self.shift = nn.Linear(condition_dim, dim)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        # x: [B, T, dim], cond: [B, condition_dim]
        x = F.layer_norm(x, (self.dim,), eps=self.eps)
        scale: torch.Tensor = self.scale(cond)
        shift: torch.Tensor = self.shift(cond)
        return x * scale.unsqueeze(1) + shift.unsqueeze(1)


class ConvNeXtBlock(nn.Module):
    """Depthwise conv (k=7) -> (Ada)LayerNorm -> MLP -> layer scale, residual. [B, C, T] -> same."""

    def __init__(self, dim: int, intermediate_dim: int, condition_dim: int | None) -> None:
        super().__init__()
        self.dwconv = nn.Conv1d(dim, dim, kernel_size=7, padding=3, groups=dim)
        self.norm = AdaLayerNorm(condition_dim, dim) if condition_dim else nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, intermediate_dim)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(intermediate_dim, dim)
        self.gamma = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None, mask: torch.Tensor | None = None) -> torch.Tensor:
        h: torch.Tensor = self.dwconv(_masked(x, mask)).transpose(1, 2)  # [B, T, C]
        h = self.norm(h, cond) if isinstance(self.norm, AdaLayerNorm) else self.norm(h)
        h = self.gamma * self.pwconv2(self.act(self.pwconv1(h)))
        return x + h.transpose(1, 2)


class VocosBackbone(nn.Module):
    """Conv embed (k=7) + ConvNeXt stack: [B, C_in, T] -> [B, T, dim] (note: time-major out)."""

    def __init__(
        self,
        input_channels: int,
        dim: int,
        intermediate_dim: int,
        num_layers: int,
        condition_dim: int | None = None,
    ) -> None:
        super().__init__()
        self.embed = nn.Conv1d(input_channels, dim, kernel_size=7, padding=3)
        self.norm = AdaLayerNorm(condition_dim, dim) if condition_dim else nn.LayerNorm(dim, eps=1e-6)
        self.convnext = nn.ModuleList(ConvNeXtBlock(dim, intermediate_dim, condition_dim) for _ in range(num_layers))
        self.final_layer_norm = nn.LayerNorm(dim, eps=1e-6)

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None, mask: torch.Tensor | None = None) -> torch.Tensor:
        x = self.embed(_masked(x, mask)).transpose(1, 2)  # [B, T, dim]
        x = self.norm(x, cond) if isinstance(self.norm, AdaLayerNorm) else self.norm(x)
        x = x.transpose(1, 2)  # [B, dim, T]
        for block in self.convnext:
            x = block(x, cond, mask)
        return cast(torch.Tensor, self.final_layer_norm(x.transpose(1, 2)))  # [B, T, dim]


class SamplingBlock(nn.Module):
    """Resampling by an integer ratio: [B, T, C] -> [B, C, T']. At ratio 1 (every published
    config) it returns ``3 * x``: the reference sums three branches that are all identities."""

    def __init__(self, dim: int, upsample_scale: int = 1, downsample_scale: int = 1) -> None:
        super().__init__()
        self.up, self.down = upsample_scale, downsample_scale
        if self.up > 1:
            self.de_conv_upsampler = nn.Sequential(
                nn.LeakyReLU(0.2),
                nn.ConvTranspose1d(
                    dim,
                    dim,
                    kernel_size=2 * self.up,
                    stride=self.up,
                    padding=self.up // 2 + self.up % 2,
                    output_padding=self.up % 2,
                    groups=dim,
                ),
            )
        if self.down > 1:
            self.conv_downsampler = nn.Sequential(
                nn.LeakyReLU(0.2),
                nn.Conv1d(
                    dim,
                    dim,
                    kernel_size=2 * self.down,
                    stride=self.down,
                    padding=self.down // 2 + self.down % 2,
                    groups=dim,
                ),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.transpose(1, 2)  # [B, C, T]
        repeated = merged = x
        if self.up > 1:
            repeated = x.repeat_interleave(self.up, dim=2)
            merged = repeated + self.de_conv_upsampler(x)
        if self.down == 1:
            return merged + repeated + merged
        down: torch.Tensor = self.conv_downsampler(merged)
        return down + F.avg_pool1d(repeated, self.down, self.down) + F.avg_pool1d(merged, self.down, self.down)


def _resample_stages(dim: int, inter: int, ratios: list[int], *, up: bool) -> nn.ModuleList:
    """``[SamplingBlock, 2-layer VocosBackbone]`` per ratio (named ``downsample.{i}.{0,1}``)."""
    return nn.ModuleList(
        nn.ModuleList(
            [
                SamplingBlock(dim, upsample_scale=r) if up else SamplingBlock(dim, downsample_scale=r),
                VocosBackbone(dim, dim, inter, num_layers=2),
            ]
        )
        for r in ratios
    )


def _stage_pairs(stages: nn.ModuleList) -> Iterator[tuple[SamplingBlock, VocosBackbone]]:
    """The stages of :func:`_resample_stages` as typed pairs (a ModuleList only knows it holds Modules)."""
    for stage in stages:
        sampler, backbone = cast(nn.ModuleList, stage)
        yield cast(SamplingBlock, sampler), cast(VocosBackbone, backbone)


def _run_stages(stages: nn.ModuleList, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    # x: [B, T, C] -> [B, T, C]
    for sampler, backbone in _stage_pairs(stages):
        if mask is not None and (sampler.up, sampler.down) != (1, 1):
            raise ValueError("padding masks need length-preserving stages (sample ratio 1)")
        x = backbone(sampler(x), mask=mask)
    return x


class FeatEncoder(nn.Module):
    """wav2vec2 features [B, C_w2v, T] -> latents [B, out_channels, T] (reference ``Encoder``)."""

    def __init__(self, cfg: EncoderConfig) -> None:
        super().__init__()
        self.encoder = VocosBackbone(cfg.input_channels, cfg.vocos_dim, cfg.vocos_intermediate_dim, cfg.vocos_num_layers)
        self.downsample = _resample_stages(cfg.vocos_dim, cfg.vocos_intermediate_dim, cfg.sample_ratios, up=False)
        self.project = nn.Linear(cfg.vocos_dim, cfg.out_channels)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        x = self.encoder(x, mask=mask)  # [B, T, vocos_dim]
        x = _run_stages(self.downsample, x, mask)
        out: torch.Tensor = self.project(x)
        return out.transpose(1, 2)  # [B, out_channels, T]


class FeatDecoder(nn.Module):
    """Latents [B, C_in, T] (+ condition [B, cond]) -> [B, out_channels, T] (reference ``Decoder``;
    BiCodec's ``prenet`` and ``postnet``)."""

    def __init__(self, cfg: FeatDecoderConfig) -> None:
        super().__init__()
        self.use_tanh_at_final = cfg.use_tanh_at_final
        self.linear_pre = nn.Linear(cfg.input_channels, cfg.vocos_dim)
        self.downsample = _resample_stages(cfg.vocos_dim, cfg.vocos_intermediate_dim, cfg.sample_ratios, up=True)
        self.vocos_backbone = VocosBackbone(
            cfg.vocos_dim,
            cfg.vocos_dim,
            cfg.vocos_intermediate_dim,
            cfg.vocos_num_layers,
            condition_dim=cfg.condition_dim,
        )
        self.linear = nn.Linear(cfg.vocos_dim, cfg.out_channels)

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None, mask: torch.Tensor | None = None) -> torch.Tensor:
        x = self.linear_pre(x.transpose(1, 2))  # [B, T, vocos_dim]
        x = _run_stages(self.downsample, x, mask).transpose(1, 2)  # [B, vocos_dim, T]
        x = self.vocos_backbone(x, cond, mask)  # [B, T, vocos_dim]
        x = self.linear(x).transpose(1, 2)  # [B, out_channels, T]
        return torch.tanh(x) if self.use_tanh_at_final else x


# ----------------------------------------------------------------------- blocks: wave generator


class WNConv1d(nn.Conv1d):
    """A Conv1d stored with weight norm (``weight_g``/``weight_v``) in the checkpoint; the loader
    folds it into a plain ``weight``."""


class WNConvTranspose1d(nn.ConvTranspose1d):
    """A ConvTranspose1d stored with weight norm in the checkpoint (norm over dim 0 = inputs)."""


class Snake1d(nn.Module):
    """x + sin(alpha * x)^2 / alpha, per channel.

    Written as one temporary updated in place and a fused multiply-add: the decoder's activations
    are large and this runs after every convolution, so memory passes matter (on CPU the plain
    formula took a third of BiCodec's decode time; this form is ~20 % faster overall, same values).
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(1, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        wave = torch.mul(x, self.alpha).sin_()
        return torch.addcmul(x, wave.mul_(wave), (self.alpha + 1e-9).reciprocal())


class ResidualUnit(nn.Module):
    """Snake -> dilated conv k=7 -> Snake -> conv k=1, residual. [B, C, L] -> same."""

    def __init__(self, dim: int, dilation: int) -> None:
        super().__init__()
        self.block = nn.Sequential(
            Snake1d(dim),
            WNConv1d(dim, dim, kernel_size=7, dilation=dilation, padding=3 * dilation),
            Snake1d(dim),
            WNConv1d(dim, dim, kernel_size=1),
        )

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        snake1, conv7, snake2, conv1 = self.block
        return x + cast(torch.Tensor, conv1(snake2(conv7(_masked(snake1(x), mask)))))


class DecoderBlock(nn.Module):
    """Snake -> transposed conv (upsample by ``stride``) -> 3 residual units (dilation 1, 3, 9)."""

    def __init__(self, input_dim: int, output_dim: int, kernel_size: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        self.block = nn.Sequential(
            Snake1d(input_dim),
            WNConvTranspose1d(
                input_dim,
                output_dim,
                kernel_size=kernel_size,
                stride=stride,
                padding=(kernel_size - stride) // 2,
            ),
            ResidualUnit(output_dim, dilation=1),
            ResidualUnit(output_dim, dilation=3),
            ResidualUnit(output_dim, dilation=9),
        )

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        # x: [B, C_in, L] -> [B, C_out, L * stride]
        snake, upsample, *units = self.block
        x = upsample(_masked(snake(x), mask))
        mask = None if mask is None else mask.repeat_interleave(self.stride, dim=2)
        for unit in units:
            x = unit(x, mask)
        return x


class WaveGenerator(nn.Module):
    """DAC-style decoder: latents [B, C, T] -> waveform [B, 1, T * prod(rates)] in [-1, 1]."""

    def __init__(self, cfg: WaveGeneratorConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = [WNConv1d(cfg.input_channel, cfg.channels, kernel_size=7, padding=3)]
        out_dim = cfg.channels
        for i, (kernel, stride) in enumerate(zip(cfg.kernel_sizes, cfg.rates)):
            in_dim, out_dim = cfg.channels // 2**i, cfg.channels // 2 ** (i + 1)
            layers.append(DecoderBlock(in_dim, out_dim, kernel, stride))
        layers += [Snake1d(out_dim), WNConv1d(out_dim, 1, kernel_size=7, padding=3), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        conv_in, *blocks, snake, conv_out, tanh = self.model
        x = conv_in(_masked(x, mask))
        for block in cast(list[DecoderBlock], blocks):
            x = block(x, mask)
            mask = None if mask is None else mask.repeat_interleave(block.stride, dim=2)
        return cast(torch.Tensor, tanh(conv_out(_masked(snake(x), mask))))


# --------------------------------------------------------------------- blocks: quantizers


class FactorizedVectorQuantize(nn.Module):
    """Semantic VQ: project to ``codebook_dim`` (8), nearest code by cosine similarity."""

    def __init__(self, cfg: QuantizerConfig) -> None:
        super().__init__()
        if cfg.input_dim != cfg.codebook_dim:
            self.in_project: nn.Module = WNConv1d(cfg.input_dim, cfg.codebook_dim, kernel_size=1)
            self.out_project: nn.Module = WNConv1d(cfg.codebook_dim, cfg.input_dim, kernel_size=1)
        else:
            self.in_project = self.out_project = nn.Identity()
        self.codebook = nn.Embedding(cfg.codebook_size, cfg.codebook_dim)
        self.register_buffer("cluster_size", torch.zeros(cfg.codebook_size))  # training statistic

    def tokenize(self, z: torch.Tensor) -> torch.Tensor:
        # z: [B, D, T] -> ids [B, T]; with both sides L2-normalised, the reference's smallest
        # euclidean distance is the largest dot product.
        z_e = F.normalize(self.in_project(z).transpose(1, 2), dim=-1)  # [B, T, d]
        codebook = F.normalize(self.codebook.weight, dim=-1)  # [K, d]
        return (z_e @ codebook.t()).argmax(dim=-1)

    def detokenize(self, ids: torch.Tensor) -> torch.Tensor:
        # ids: [B, T] -> [B, D, T]; the raw (unnormalised) code vectors, as the reference does
        return cast(torch.Tensor, self.out_project(self.codebook(ids).transpose(1, 2)))


class ResidualFSQ(nn.Module):
    """Residual finite scalar quantisation (lucidrains' ``ResidualFSQ`` with ``FSQ`` layers):
    project to ``len(levels)`` dims, bound each with tanh, round to ``levels`` values. Runs in
    float32 like the reference (``force_quantization_f32``)."""

    def __init__(self, levels: list[int], num_quantizers: int, dim: int) -> None:
        super().__init__()
        self.levels = list(levels)
        self.num_quantizers = num_quantizers
        self.basis = [math.prod(self.levels[:i]) for i in range(len(self.levels))]
        self.project_in = nn.Linear(dim, len(levels))
        self.project_out = nn.Linear(len(levels), dim)

    @property
    def codebook_size(self) -> int:
        return math.prod(self.levels)

    def _consts(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        return (
            torch.tensor(self.levels, device=device),
            torch.tensor(self.basis, device=device),
        )

    def quantize(self, x: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
        # x: [B, N, dim] -> ids [B, N, num_quantizers]
        levels, basis = self._consts(x.device)
        half_width = levels // 2
        half_l = (levels - 1) * (1 + eps) / 2
        offset = torch.where(levels % 2 == 0, 0.5, 0.0)
        shift = (offset / half_l).atanh()
        residual = self.project_in(x).float()
        ids = []
        for q in range(self.num_quantizers):
            scale = (levels.float() - 1) ** -q
            bounded = ((residual / scale) + shift).tanh() * half_l - offset
            codes = bounded.round() / half_width  # [B, N, len(levels)] in [-1, 1]
            ids.append(((codes * half_width + half_width) * basis).sum(-1).long())
            residual = residual - codes * scale
        return torch.stack(ids, dim=-1)

    def dequantize(self, ids: torch.Tensor) -> torch.Tensor:
        # ids: [B, N, num_quantizers] -> [B, N, dim]
        levels, basis = self._consts(ids.device)
        half_width = levels // 2
        codes = torch.zeros(*ids.shape[:-1], len(self.levels), device=ids.device)
        for q in range(ids.shape[-1]):
            level_ids = (ids[..., q, None] // basis) % levels
            codes = codes + (level_ids - half_width) / half_width * (levels.float() - 1) ** -q
        return cast(torch.Tensor, self.project_out(codes.to(self.project_out.weight.dtype)))


# --------------------------------------------------------------------- blocks: speaker encoder


class Conv1dReluBn(nn.Module):
    def __init__(self, c_in: int, c_out: int, kernel_size: int = 1, padding: int = 0) -> None:
        super().__init__()
        self.conv = nn.Conv1d(c_in, c_out, kernel_size, padding=padding)
        self.bn = nn.BatchNorm1d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return cast(torch.Tensor, self.bn(F.relu(self.conv(x))))


class Res2Conv1dReluBn(nn.Module):
    """Res2Net block: channel split into ``scale`` groups, each conv sees the previous output."""

    def __init__(self, channels: int, kernel_size: int, padding: int, dilation: int, scale: int) -> None:
        super().__init__()
        self.width, self.scale = channels // scale, scale
        self.nums = scale if scale == 1 else scale - 1
        self.convs = nn.ModuleList(nn.Conv1d(self.width, self.width, kernel_size, padding=padding, dilation=dilation) for _ in range(self.nums))
        self.bns = nn.ModuleList(nn.BatchNorm1d(self.width) for _ in range(self.nums))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        splits = torch.split(x, self.width, dim=1)
        out, sp = [], splits[0]
        for i, (conv, bn) in enumerate(zip(self.convs, self.bns)):
            sp = sp + splits[i] if i >= 1 else sp
            sp = bn(F.relu(conv(sp)))
            out.append(sp)
        if self.scale != 1:  # the last split passes through untouched
            out.append(splits[self.nums])
        return torch.cat(out, dim=1)


class SEConnect(nn.Module):
    """Squeeze-and-excitation over time."""

    def __init__(self, channels: int, bottleneck: int = 128) -> None:
        super().__init__()
        self.linear1 = nn.Linear(channels, bottleneck)
        self.linear2 = nn.Linear(bottleneck, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = torch.sigmoid(self.linear2(F.relu(self.linear1(x.mean(dim=2)))))
        return x * w.unsqueeze(2)


class SERes2Block(nn.Module):
    def __init__(self, channels: int, padding: int, dilation: int) -> None:
        super().__init__()
        self.se_res2block = nn.Sequential(
            Conv1dReluBn(channels, channels),
            Res2Conv1dReluBn(channels, 3, padding, dilation, scale=8),
            Conv1dReluBn(channels, channels),
            SEConnect(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + cast(torch.Tensor, self.se_res2block(x))


class AttentiveStatsPool(nn.Module):
    """ASTP with global context; only feeds the x-vector (training), kept for strict loading."""

    def __init__(self, in_dim: int, bottleneck: int = 128) -> None:
        super().__init__()
        self.linear1 = nn.Conv1d(in_dim * 3, bottleneck, kernel_size=1)
        self.linear2 = nn.Conv1d(bottleneck, in_dim, kernel_size=1)


class EcapaTdnn(nn.Module):
    """ECAPA-TDNN (``ECAPA_TDNN_GLOB_c512``): mel [B, n_mels, T] -> frame latents [B, 1536, T]."""

    channels = 512

    def __init__(self, feat_dim: int, embed_dim: int) -> None:
        super().__init__()
        c = self.channels
        self.layer1 = Conv1dReluBn(feat_dim, c, kernel_size=5, padding=2)
        self.layer2 = SERes2Block(c, padding=2, dilation=2)
        self.layer3 = SERes2Block(c, padding=3, dilation=3)
        self.layer4 = SERes2Block(c, padding=4, dilation=4)
        self.conv = nn.Conv1d(3 * c, 3 * c, kernel_size=1)
        # x-vector head (pool -> bn -> linear): training only
        self.pool = AttentiveStatsPool(3 * c)
        self.bn = nn.BatchNorm1d(6 * c)
        self.linear = nn.Linear(6 * c, embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out2 = self.layer2(self.layer1(x))
        out3 = self.layer3(out2)
        out4 = self.layer4(out3)
        return F.relu(self.conv(torch.cat([out2, out3, out4], dim=1)))


class RMSNorm(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.scale: float = dim**0.5
        self.gamma = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x, dim=-1) * self.scale * self.gamma


class CrossAttention(nn.Module):
    """Latents attend to [latents; context] (``cross_attn_include_queries=True``), no biases."""

    def __init__(self, dim: int, heads: int = 8, dim_head: int = 64) -> None:
        super().__init__()
        self.heads = heads
        inner = heads * dim_head
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_kv = nn.Linear(dim, inner * 2, bias=False)
        self.to_out = nn.Linear(inner, dim, bias=False)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        # x: [B, n, dim], context: [B, T, dim]
        context = torch.cat([x, context], dim=1)
        q = self.to_q(x)
        k, v = self.to_kv(context).chunk(2, dim=-1)

        def split(t: torch.Tensor) -> torch.Tensor:
            return torch.unflatten(t, -1, (self.heads, -1)).transpose(1, 2)

        out = F.scaled_dot_product_attention(split(q), split(k), split(v))  # [B, h, n, d]
        return cast(torch.Tensor, self.to_out(out.transpose(1, 2).flatten(2)))


class GEGLU(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, gate = x.chunk(2, dim=-1)
        return F.gelu(gate) * x


class PerceiverResampler(nn.Module):
    """Resamples a variable-length sequence to ``num_latents`` learned queries (2 layers)."""

    def __init__(self, dim: int, dim_context: int, num_latents: int, depth: int = 2, ff_mult: int = 4) -> None:
        super().__init__()
        self.proj_context = nn.Linear(dim_context, dim) if dim_context != dim else nn.Identity()
        self.latents = nn.Parameter(torch.zeros(num_latents, dim))
        ff_inner = int(dim * ff_mult * 2 / 3)
        self.layers = nn.ModuleList(
            nn.ModuleList(
                [
                    CrossAttention(dim),
                    nn.Sequential(nn.Linear(dim, ff_inner * 2), GEGLU(), nn.Linear(ff_inner, dim)),
                ]
            )
            for _ in range(depth)
        )
        self.norm = RMSNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: [B, T, dim_context] -> [B, num_latents, dim]
        x = self.proj_context(x)
        latents = self.latents.unsqueeze(0).expand(x.shape[0], -1, -1)
        for layer in self.layers:
            attn, ff = cast(nn.ModuleList, layer)
            latents = attn(latents, x) + latents
            latents = ff(latents) + latents
        return cast(torch.Tensor, self.norm(latents))


class SpeakerEncoder(nn.Module):
    """mel -> 32 global tokens (tokenize); global tokens -> d-vector (detokenize)."""

    def __init__(self, cfg: SpeakerEncoderConfig) -> None:
        super().__init__()
        self.token_num = cfg.token_num
        self.speaker_encoder = EcapaTdnn(cfg.input_dim, cfg.out_dim)
        self.perceiver_sampler = PerceiverResampler(cfg.latent_dim, 3 * EcapaTdnn.channels, cfg.token_num)
        self.quantizer = ResidualFSQ(cfg.fsq_levels, cfg.fsq_num_quantizers, cfg.latent_dim)
        self.project = nn.Linear(cfg.latent_dim * cfg.token_num, cfg.out_dim)

    def tokenize(self, mel: torch.Tensor) -> torch.Tensor:
        # mel: [B, n_mels, T] -> ids [B, num_quantizers, token_num]
        latents = self.speaker_encoder(mel)  # [B, 1536, T]
        x = self.perceiver_sampler(latents.transpose(1, 2))  # [B, token_num, latent]
        return self.quantizer.quantize(x).transpose(1, 2)

    def detokenize(self, ids: torch.Tensor) -> torch.Tensor:
        # ids: [B, num_quantizers, token_num] -> d-vector [B, out_dim]
        z = self.quantizer.dequantize(ids.transpose(1, 2))  # [B, token_num, latent]
        return cast(torch.Tensor, self.project(z.transpose(1, 2).flatten(1)))  # flattened latent-major, as reference


# -------------------------------------------------------------------------------------- model


class BiCodec(nn.Module):
    """Semantic path: features -> encoder -> VQ ids -> codebook -> prenet (conditioned on the
    d-vector) + d-vector -> wave generator. Global path: mel -> speaker encoder -> FSQ ids."""

    def __init__(self, cfg: BiCodecConfig) -> None:
        super().__init__()
        self.config = cfg
        self.encoder = FeatEncoder(cfg.encoder)
        self.decoder = WaveGenerator(cfg.decoder)
        self.quantizer = FactorizedVectorQuantize(cfg.quantizer)
        self.speaker_encoder = SpeakerEncoder(cfg.speaker_encoder)
        self.prenet = FeatDecoder(cfg.prenet)
        self.postnet = FeatDecoder(cfg.postnet)  # predicts wav2vec features; training only
        self.mel_transformer = self.build_mel()

    def build_mel(self) -> MelSpectrogram:
        m = self.config.mel_params
        return MelSpectrogram(m.sample_rate, m.n_fft, m.win_length, m.hop_length, m.mel_fmin, m.mel_fmax, m.num_mels)

    @property
    def hop_length(self) -> int:
        return math.prod(self.config.decoder.rates)

    def tokenize(self, feat: torch.Tensor, ref_wav: torch.Tensor, feat_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """feat [B, T, C_w2v], ref_wav [B, N_ref], feat_mask [B, T] (bool) ->
        (semantic ids [B, T], global ids [B, num_quantizers, token_num])."""
        mask = None if feat_mask is None else feat_mask.unsqueeze(1).to(feat.dtype)
        z = self.encoder(feat.transpose(1, 2), mask)  # [B, D, T]
        semantic = self.quantizer.tokenize(z)
        mel = self.mel_transformer(ref_wav)  # [B, n_mels, T_ref]
        return semantic, self.speaker_encoder.tokenize(mel)

    def detokenize(self, semantic: torch.Tensor, global_ids: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """semantic [B, T], global ids [B, num_quantizers, token_num], mask [B, T] (bool) ->
        waveform [B, 1, T * hop]."""
        first_conv = cast(WNConv1d, self.decoder.model[0])
        m = None if mask is None else mask.unsqueeze(1).to(first_conv.weight.dtype)
        z_q = self.quantizer.detokenize(semantic)  # [B, D, T]
        d_vector = self.speaker_encoder.detokenize(global_ids)  # [B, out_dim]
        x = self.prenet(z_q, d_vector, m) + d_vector.unsqueeze(-1)
        return cast(torch.Tensor, self.decoder(x, m))


# ------------------------------------------------------------------------------------- loader


def weight_norm_modules(model: nn.Module) -> dict[str, nn.Module]:
    """Modules whose ``weight`` the checkpoint stores as ``weight_g``/``weight_v``."""
    return {name: m for name, m in model.named_modules() if isinstance(m, (WNConv1d, WNConvTranspose1d))}


def checkpoint_shapes(model: nn.Module) -> dict[str, tuple[int, ...]]:
    """Tensor names and shapes the official checkpoint holds for this model (weight norm split,
    ``mel_transformer.*`` excluded since those buffers are optional)."""
    wn = weight_norm_modules(model)
    shapes: dict[str, tuple[int, ...]] = {}
    for name, t in model.state_dict().items():
        module, _, leaf = name.rpartition(".")
        if module in wn and leaf == "weight":
            shapes[f"{module}.weight_g"] = (t.shape[0],) + (1,) * (t.dim() - 1)
            shapes[f"{module}.weight_v"] = tuple(t.shape)
        else:
            shapes[name] = tuple(t.shape)
    return shapes


def fold_weight_norm(g: torch.Tensor, v: torch.Tensor, *, inplace: bool = False) -> torch.Tensor:
    """weight = g * v / ||v||, the norm taken over every dim but 0 (torch's ``weight_norm``);
    ``inplace`` writes it over ``v``."""
    norm = v.flatten(1).norm(dim=1).view(-1, *([1] * (v.dim() - 1)))
    return v.mul_(g / norm) if inplace else v * (g / norm)


def _check_and_fold(state: dict[str, torch.Tensor], model: BiCodec, source: str) -> dict[str, torch.Tensor]:
    expected = checkpoint_shapes(model)
    state = {k: v for k, v in state.items() if not k.startswith("mel_transformer.")}
    check_tensors(expected, {k: tuple(v.shape) for k, v in state.items()}, where=f"the BiCodec checkpoint {source}")
    folded: dict[str, torch.Tensor] = {}
    for name, t in state.items():
        if name.endswith(".weight_v"):
            continue
        if name.endswith(".weight_g"):
            module = name[: -len(".weight_g")]
            v = state[f"{module}.weight_v"]
            # into v's own storage when it is float32 already: no second copy of the codec while loading
            folded[f"{module}.weight"] = fold_weight_norm(t.float(), v.float(), inplace=v.dtype == torch.float32)
        else:
            folded[name] = t
    return folded


def load_bicodec(model_dir: Path | str, device: torch.device | str = "cpu") -> BiCodec:
    """Load ``BiCodec/`` (config.yaml + model.safetensors) strictly, weight norm folded."""
    model_dir = Path(model_dir)
    cfg = BiCodecConfig.from_yaml(model_dir / "config.yaml")
    ckpt = model_dir / "model.safetensors"
    if not ckpt.is_file():
        raise ModelLoadError(f"BiCodec checkpoint not found: {ckpt}")
    try:
        state = read_safetensors(ckpt)  # plain reads: no memory map resident beside the weights
    except Exception as exc:  # safetensors raises several types for a corrupt file
        raise ModelLoadError(f"cannot read BiCodec checkpoint {ckpt}: {exc}") from exc
    with torch.device("meta"):
        model = BiCodec(cfg)
    folded = _check_and_fold(state, model, str(ckpt))
    model.load_state_dict(folded, strict=True, assign=True)  # mel buffers stay on the CPU
    return model.float().to(device).eval()
