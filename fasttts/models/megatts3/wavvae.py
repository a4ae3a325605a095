"""MegaTTS3 WaveVAE: 25 Hz latents [B, T, 32] → 24 kHz audio [B, 1, 960·T], and (when a full
checkpoint has it) 24 kHz audio → latents.

Must equal ``WavVAE_V3.decode`` / ``encode_latent`` of ``tts/modules/wavvae/decoder/wavvae_v3.py``
with the ``Generator``, ``Upsample`` and ``ResBlockMRFV2Inter`` of ``hifigan_modules.py`` and the
``seanet_encoder.Encoder`` (``SEANetEncoder``, ``SConv1d``, ``SLSTM`` of ``encoder/common_modules``);
state-dict names are the official ones. The published release withholds the encoder: voices then
bring their latent as a ``.npy``.
"""

from __future__ import annotations

import math
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from fasttts.models.megatts3.config import WavVAEConfig
from fasttts.models.megatts3.layers import WNConv1d, WNConvTranspose1d

LEAK = 0.2
MRF_KERNELS = (3, 7, 11)
MRF_DILATIONS = (1, 3, 5)


# ----------------------------------------------------------------------------- blocks
class Upsample(nn.Module):
    """``hifigan_modules.Upsample``: x + sin x, then nearest×r → conv k7 plus a transposed conv."""

    def __init__(self, channels: int, r: int) -> None:
        super().__init__()
        self.r = r
        rk = max(r, 5)
        # names: upsample.3 (after Upsample, LeakyReLU, ReflectionPad), trans_upsample.1 (after LeakyReLU)
        self.upsample = nn.ModuleDict({"3": WNConv1d(channels, channels // 2, 7)})
        self.trans_upsample = nn.ModuleDict({"1": WNConvTranspose1d(channels, channels // 2, rk * 2, stride=r, padding=rk - r // 2, output_padding=r % 2)})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.sin(x) + x
        a: torch.Tensor = F.interpolate(x, scale_factor=self.r, mode="nearest")
        a = self.upsample["3"](F.pad(F.leaky_relu(a, LEAK), (3, 3), mode="reflect"))
        b: torch.Tensor = self.trans_upsample["1"](F.leaky_relu(x, LEAK))
        return a + b


class MRFBranch(nn.Module):
    """``ResBlockMRFV2``: three (dilated conv, conv) residual pairs of one kernel size."""

    def __init__(self, channels: int, kernel: int) -> None:
        super().__init__()
        self.convs1 = nn.ModuleList(WNConv1d(channels, channels, kernel, dilation=d, padding=(kernel * d - d) // 2) for d in MRF_DILATIONS)
        self.convs2 = nn.ModuleList(WNConv1d(channels, channels, kernel, padding=(kernel - 1) // 2) for _ in MRF_DILATIONS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for c1, c2 in zip(self.convs1, self.convs2):
            x = x + c2(F.leaky_relu(c1(F.leaky_relu(x, LEAK)), LEAK))
        return x


class MRF(nn.Module):
    """``ResBlockMRFV2Inter``: the mean of the kernel-3, -7 and -11 branches."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.block1, self.block2, self.block3 = (MRFBranch(channels, k) for k in MRF_KERNELS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return cast(torch.Tensor, self.block1(x) + self.block2(x) + self.block3(x)) / 3


class Generator(nn.Module):
    """``hifigan_modules.Generator`` as built by ``WavVAE_V3`` (one band, Tanh output)."""

    def __init__(self, cfg: WavVAEConfig) -> None:
        super().__init__()
        mult = 2 ** len(cfg.ratios)
        layers: dict[str, nn.Module] = {"1": WNConv1d(cfg.proj_channels // 2, mult * cfg.ngf, 7)}
        index = 2
        for r in cfg.ratios:
            layers[str(index)] = Upsample(mult * cfg.ngf, r)
            layers[str(index + 1)] = MRF(mult * cfg.ngf // 2)
            index += 2
            mult //= 2
        self.final_index = index + 2  # LeakyReLU, ReflectionPad, conv
        layers[str(self.final_index)] = WNConv1d(cfg.ngf, 1, 7)
        if not cfg.use_tanh:
            layers[str(self.final_index + 1)] = nn.Conv1d(1, 1, 1)
        self.use_tanh = cfg.use_tanh
        self.model_up = nn.ModuleDict(layers)
        self.stages = len(cfg.ratios)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.model_up["1"](F.pad(x, (3, 3), mode="reflect"))
        for i in range(self.stages):
            x = self.model_up[str(2 + 2 * i + 1)](self.model_up[str(2 + 2 * i)](x))
        x = self.model_up[str(self.final_index)](F.pad(F.leaky_relu(x, LEAK), (3, 3), mode="reflect"))
        if self.use_tanh:
            return torch.tanh(x)
        return cast(torch.Tensor, self.model_up[str(self.final_index + 1)](x))


# ----------------------------------------------------------------------------- encoder blocks
class _WrappedConv(nn.Module):
    """The weight-normed conv under ``SConv1d``'s ``conv.conv`` name."""

    def __init__(self, conv: WNConv1d) -> None:
        super().__init__()
        self.conv = conv


class SConv(nn.Module):
    """``SConv1d`` (non-causal, weight norm, reflect padding to whole strides), as ``conv.conv``."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, dilation: int = 1) -> None:
        super().__init__()
        self.conv = _WrappedConv(WNConv1d(cin, cout, kernel, stride=stride, dilation=dilation))
        self.kernel, self.stride, self.dilation = kernel, stride, dilation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = (self.kernel - 1) * self.dilation + 1
        total = k - self.stride
        length = x.shape[-1]
        frames = (length - k + total) / self.stride + 1
        extra = (math.ceil(frames) - 1) * self.stride + (k - total) - length
        right = total // 2
        left, right = total - right, right + extra
        grow = max(left, right) - length + 1 if length <= max(left, right) else 0  # reflect needs a longer input
        padded = F.pad(F.pad(x, (0, grow)), (left, right), mode="reflect")
        return cast(torch.Tensor, self.conv.conv(padded[..., : padded.shape[-1] - grow]))


class SEANetBlock(nn.Module):
    """``SEANetResnetBlock`` (ELU, conv k3, ELU, conv k1; 1×1 conv shortcut)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.block = nn.ModuleDict({"1": SConv(dim, dim // 2, 3), "3": SConv(dim // 2, dim, 1)})
        self.shortcut = SConv(dim, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return cast(torch.Tensor, self.shortcut(x) + self.block["3"](F.elu(self.block["1"](F.elu(x)))))


class SLSTM(nn.Module):
    """``SLSTM``: a 2-layer LSTM over time with a skip connection."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.lstm = nn.LSTM(dim, dim, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y: torch.Tensor
        y, _ = self.lstm(x.permute(2, 0, 1))
        return y.permute(1, 2, 0) + x


class SEANetEncoder(nn.Module):
    """``SEANetEncoder`` as ``seanet_encoder.Encoder`` builds it (strides reversed, one residual block
    per stage, LSTM, ELU, conv to ``enc_dim``), wrapped as ``encoder.encoder.model.N``."""

    def __init__(self, cfg: WavVAEConfig) -> None:
        super().__init__()
        layers: dict[str, nn.Module] = {"0": SConv(1, cfg.enc_filters, 7)}
        mult, index = 1, 1
        for r in reversed(cfg.enc_ratios):
            layers[str(index)] = SEANetBlock(mult * cfg.enc_filters)
            layers[str(index + 2)] = SConv(mult * cfg.enc_filters, mult * cfg.enc_filters * 2, 2 * r, stride=r)
            index += 3
            mult *= 2
        layers[str(index)] = SLSTM(mult * cfg.enc_filters)
        layers[str(index + 2)] = SConv(mult * cfg.enc_filters, cfg.enc_dim, 7)
        self.order = sorted(layers, key=int)
        # the ELUs (parameter-free, so absent from the names) sit just before these convs
        self.after_elu = {k for k in self.order[1:] if str(int(k) - 1) not in layers}
        self.model = nn.ModuleDict(layers)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        x = audio[:, None]
        for key in self.order:
            x = self.model[key](F.elu(x) if key in self.after_elu else x)
        return x


# ----------------------------------------------------------------------------- model
class _WrappedEncoder(nn.Module):
    """The SEANet encoder under ``WavVAE_V3``'s ``encoder.encoder`` name."""

    def __init__(self, encoder: SEANetEncoder) -> None:
        super().__init__()
        self.encoder = encoder


class WavVAEDecoder(nn.Module):
    """``WavVAE_V3``: the decoder, plus the encoder when the checkpoint is a full one."""

    def __init__(self, cfg: WavVAEConfig, *, with_encoder: bool = False) -> None:
        super().__init__()
        self.cfg = cfg
        if with_encoder:
            self.encoder = _WrappedEncoder(SEANetEncoder(cfg))
            self.proj_to_z = nn.Linear(cfg.enc_dim, 2 * cfg.latent_dim)
        self.has_encoder = with_encoder
        self.proj_to_decoder = nn.Linear(cfg.latent_dim, cfg.proj_channels)
        self.latent_upsampler = Upsample(cfg.proj_channels, cfg.latent_upsample)
        self.decoder = Generator(cfg)

    @torch.inference_mode()
    def encode_latent(self, audio: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """[B, samples] at 24 kHz → a posterior sample [B, samples/960, latent_dim] (``encode_latent``)."""
        z: torch.Tensor = self.proj_to_z(self.encoder.encoder(audio).transpose(1, 2))
        mean, logvar = z.chunk(2, dim=-1)
        std = torch.exp(0.5 * logvar.clamp(-30.0, 20.0))
        noise = torch.randn(mean.transpose(1, 2).shape, generator=generator).to(mean).transpose(1, 2)
        return mean + std * noise

    @torch.inference_mode()
    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        """[B, T, latent_dim] → [B, 1, hop · T]."""
        x = self.proj_to_decoder(latent).transpose(1, 2)
        return cast(torch.Tensor, self.decoder(self.latent_upsampler(x)))


ENCODER_PREFIXES = ("encoder.", "proj_to_z.")
"""Tensors of the withheld encoder half: accepted in ``decoder.ckpt`` and ignored."""
