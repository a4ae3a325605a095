"""MegaTTS3 in the model registry: the ByteDance/MegaTTS3 release layout."""

from __future__ import annotations

from pathlib import Path

from fasttts.models.registry import ModelFamily


def detect(root: Path) -> bool:
    return (root / "diffusion_transformer").is_dir() and (root / "wavvae").is_dir()


FAMILY = ModelFamily(
    name="megatts3",
    detect=detect,
    engine="fasttts.models.megatts3.engine:MegaEngine",
    layout="a MegaTTS3 directory (aligner_lm/, duration_lm/, diffusion_transformer/, wavvae/, g2p/)",
)
