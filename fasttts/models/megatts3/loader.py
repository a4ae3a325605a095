"""Strict loading of a MegaTTS3 release directory (``aligner_lm/``, ``duration_lm/``,
``diffusion_transformer/``, ``wavvae/``, ``g2p/``), read exactly as published.

Every ``.ckpt`` is a ``torch.save`` dict ``{"state_dict": {sub_key: {name: tensor}}}``; names lose
``module.`` / ``_orig_mod.`` prefixes as in the official ``load_ckpt``, which picks
``model_only_last.ckpt`` or else the highest ``model_ckpt_steps_<N>.ckpt``. Unlike the reference,
every part is checked strictly with :func:`fasttts.checkpoint.check_tensors` (the DiT's reference
falls back to a partial load; decoder-only WaveVAE ignores only the withheld encoder's tensors).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import torch
from torch import nn

from fasttts.checkpoint import check_tensors
from fasttts.errors import ModelLoadError
from fasttts.models.megatts3.aligner import Aligner
from fasttts.models.megatts3.config import AlignerConfig, DiTConfig, DurationConfig, WavVAEConfig
from fasttts.models.megatts3.dit import Diffusion
from fasttts.models.megatts3.duration import DurationLM
from fasttts.models.megatts3.wavvae import ENCODER_PREFIXES, WavVAEDecoder

PARTS = ("aligner_lm", "duration_lm", "diffusion_transformer", "wavvae", "g2p")
SUB_KEYS = {"aligner_lm": "model", "duration_lm": "dur_model", "diffusion_transformer": "dit", "wavvae": "model_gen"}
_STEPS = re.compile(r"model_ckpt_steps_(\d+)\.ckpt$")
Model = TypeVar("Model", bound=nn.Module)


def checkpoint_file(folder: Path) -> Path:
    """The file the official ``load_ckpt`` would read in ``folder``."""
    last = folder / "model_only_last.ckpt"
    if last.is_file():
        return last
    steps = sorted((int(m.group(1)), p) for p in folder.glob("model_ckpt_steps_*.ckpt") if (m := _STEPS.search(p.name)))
    if not steps:
        raise ModelLoadError(f"{folder} has no model_only_last.ckpt or model_ckpt_steps_<N>.ckpt")
    return steps[-1][1]


def _clean(name: str) -> str:
    for prefix in ("module.", "_orig_mod."):
        if name.startswith(prefix):
            name = name[len(prefix) :]
    return name


def read_state(path: Path, sub_key: str) -> dict[str, torch.Tensor]:
    """The ``sub_key`` state dict of an official ``.ckpt`` (float tensors, cleaned names)."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelLoadError(f"cannot read {path}: {exc}") from exc
    state = ckpt.get("state_dict") if isinstance(ckpt, dict) else None
    if not isinstance(state, dict):
        raise ModelLoadError(f"{path} has no 'state_dict' mapping")
    state = {_clean(k): v for k, v in state.items()}
    if sub_key not in state or not isinstance(state[sub_key], dict):
        raise ModelLoadError(f"{path}: state_dict has no '{sub_key}' entry (found: {', '.join(sorted(state)) or 'nothing'})")
    return {_clean(k): v for k, v in state[sub_key].items()}


def load_into(model: Model, state: dict[str, torch.Tensor], *, where: str, ignore_prefixes: tuple[str, ...] = ()) -> Model:
    """Check ``state`` strictly against ``model`` (every problem named) and load it."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    check_tensors(expected, {k: tuple(v.shape) for k, v in state.items()}, where=where, ignore=lambda n: n.startswith(ignore_prefixes))
    model.load_state_dict({k: v for k, v in state.items() if k in expected}, strict=True)
    return model.eval()


@dataclass
class MegaParts:
    """The loaded networks of one release, with their configs."""

    aligner: Aligner
    duration: DurationLM
    dit: Diffusion
    wavvae: WavVAEDecoder
    has_encoder: bool
    dit_config: DiTConfig
    g2p_dir: Path


def check_layout(root: Path) -> None:
    for part in PARTS:
        if not (root / part).is_dir():
            raise ModelLoadError(f"not a MegaTTS3 directory: {root / part}/ is missing")
    if not (root / "g2p" / "config.json").is_file() or not (root / "g2p" / "tokenizer.json").is_file():
        raise ModelLoadError(f"{root / 'g2p'} needs config.json and tokenizer.json (a Hugging Face causal-LM directory)")


def load_parts(root: str | Path, device: str = "cpu") -> MegaParts:
    """Build and strictly load every network of a release directory."""
    root = Path(root)
    check_layout(root)
    dit_cfg = DiTConfig.load(root / "diffusion_transformer" / "config.yaml")
    aligner_cfg = AlignerConfig.load(root / "aligner_lm" / "config.yaml") if (root / "aligner_lm" / "config.yaml").is_file() else AlignerConfig()
    dur_cfg = DurationConfig.load(root / "duration_lm" / "config.yaml")
    vae_cfg = WavVAEConfig.load(root / "wavvae" / "config.yaml")

    def part(name: str, model: Model) -> Model:
        path = checkpoint_file(root / name)
        return load_into(model, read_state(path, SUB_KEYS[name]), where=str(path)).to(device)

    aligner = part("aligner_lm", Aligner(aligner_cfg))
    duration = part("duration_lm", DurationLM(dur_cfg))
    dit = part("diffusion_transformer", Diffusion(dit_cfg))
    full = root / "wavvae" / "model_only_last.ckpt"
    path = full if full.is_file() else root / "wavvae" / "decoder.ckpt"
    if not path.is_file():
        raise ModelLoadError(f"{root / 'wavvae'} has neither decoder.ckpt nor model_only_last.ckpt")
    state = read_state(path, SUB_KEYS["wavvae"])
    has_encoder = full.is_file()  # as the reference: model_only_last.ckpt is the full model, loaded strictly
    model = WavVAEDecoder(vae_cfg, with_encoder=has_encoder)
    wavvae = load_into(model, state, where=str(path), ignore_prefixes=() if has_encoder else ENCODER_PREFIXES).to(device)
    return MegaParts(aligner, duration, dit, wavvae, has_encoder, dit_cfg, root / "g2p")
