"""MegaTTS3 WaveVAE decoder: 25 Hz latents [B, T, 32] → 24 kHz audio [B, 1, 960·T].

Must equal ``WavVAE_V3.decode`` of ``tts/modules/wavvae/decoder/wavvae_v3.py`` with the
``Generator``, ``Upsample`` and ``ResBlockMRFV2Inter`` of ``hifigan_modules.py``; state-dict names
are the official ones (``proj_to_decoder``, ``latent_upsampler``, ``decoder.model_up.N``). The
encoder is withheld by the release: voices bring their latent as a ``.npy``.
"""

from __future__ import annotations

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
        a = F.interpolate(x, scale_factor=self.r, mode="nearest")
        a = self.upsample["3"](F.pad(F.leaky_relu(a, LEAK), (3, 3), mode="reflect"))
        b = self.trans_upsample["1"](F.leaky_relu(x, LEAK))
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
        return (self.block1(x) + self.block2(x) + self.block3(x)) / 3


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
        return torch.tanh(x) if self.use_tanh else self.model_up[str(self.final_index + 1)](x)


# ----------------------------------------------------------------------------- model
class WavVAEDecoder(nn.Module):
    """The decoding half of ``WavVAE_V3``."""

    def __init__(self, cfg: WavVAEConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.proj_to_decoder = nn.Linear(cfg.latent_dim, cfg.proj_channels)
        self.latent_upsampler = Upsample(cfg.proj_channels, cfg.latent_upsample)
        self.decoder = Generator(cfg)

    @torch.inference_mode()
    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        """[B, T, latent_dim] → [B, 1, hop · T]."""
        x = self.proj_to_decoder(latent).transpose(1, 2)
        return self.decoder(self.latent_upsampler(x))


ENCODER_PREFIXES = ("encoder.", "proj_to_z.")
"""Tensors of the withheld encoder half: accepted in ``decoder.ckpt`` and ignored."""
