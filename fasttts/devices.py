"""The one meaning of a device flag's ``auto`` (``--llm_device``, ``--tokenizer_device``, …)."""

from __future__ import annotations


def resolve_device(name: str) -> str:
    """``auto``: the first CUDA device when there is one, else the CPU; anything else as given."""
    if name != "auto":
        return name
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
