"""Piper in the model registry: a ``*.onnx`` voice (with its ``.onnx.json``), or none at all."""

from __future__ import annotations

from pathlib import Path

from fasttts.models.registry import ModelFamily


def detect(root: Path) -> bool:
    """A Piper ``.onnx`` file, or a directory of them that is not a Hugging Face model."""
    if root.suffix == ".onnx":
        return True
    return root.is_dir() and any(root.glob("*.onnx")) and not (root / "config.json").exists()


FAMILY = ModelFamily(
    name="piper",
    detect=detect,
    engine="fasttts.models.piper.engine:PiperEngine",
    layout="a Piper .onnx voice (its .onnx.json beside it), or no path for the bundled voice",
)
