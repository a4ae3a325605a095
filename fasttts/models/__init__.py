"""Model families. Each knows how to recognise its directory (``detect``) and load it."""

from __future__ import annotations

import json
from pathlib import Path


def detect_model_type(model_path: str | Path | None) -> str:
    """Which family an official release directory belongs to, from its files (never its name).

    - ``piper``: no path (the bundled voice), or a ``*.onnx`` file / directory holding one.
    - ``spark``: ``LLM/`` + ``BiCodec/`` + ``config.yaml`` (Spark-TTS-0.5B layout).
    - ``orpheus``: a Llama ``config.json`` whose tokenizer has ``<custom_token_…>`` audio tokens.
    - ``megatts3``: ``diffusion_transformer/`` + ``wavvae/`` (recognised, not supported yet).
    """
    from fasttts.errors import ModelLoadError

    if model_path is None:
        return "piper"
    root = Path(model_path)
    if not root.exists():
        raise ModelLoadError(f"model path {root} does not exist")
    if root.suffix == ".onnx" or (root.is_dir() and any(root.glob("*.onnx")) and not (root / "config.json").exists()):
        return "piper"
    if (root / "LLM").is_dir() and (root / "BiCodec").is_dir():
        return "spark"
    if (root / "diffusion_transformer").is_dir() and (root / "wavvae").is_dir():
        return "megatts3"
    config = root / "config.json"
    if config.exists():
        model_type = json.loads(config.read_text()).get("model_type")
        tokenizer = root / "tokenizer.json"
        if model_type == "llama" and tokenizer.exists() and "<custom_token_" in tokenizer.read_text(errors="ignore")[:50_000_000]:
            return "orpheus"
    raise ModelLoadError(
        f"cannot tell which model {root} holds: expected a Spark-TTS directory (LLM/, BiCodec/), an Orpheus Llama "
        "directory (config.json + tokenizer with <custom_token_N>), or a Piper .onnx voice"
    )
