"""Random-weight Orpheus directories in the released layout, for tests and benchmarks.

``write_random_orpheus(out, size=...)`` writes

* ``out/``: a Hugging Face Llama directory (config, safetensors, tokenizer) whose tokenizer holds
  Llama-3's special tokens plus ``<custom_token_0>`` … ``<custom_token_28683>`` like
  orpheus-3b-0.1-ft (``full``: Llama-3.2-3B shapes, vocabulary 156,940 and, when ``llama-models``
  is installed, the release's tokenizer: Llama 3's BPE, its 256 specials from 128000,
  ``<custom_token_N>`` at 128256+N; ``tiny``: the same token strings, small dimensions and a small
  BPE, so every id differs from the release's and only lookups by string work);
* ``out/snac/``: ``config.json`` with hubertsiuzdak/snac_24khz's values and ``pytorch_model.bin``
  with random weights (``tiny`` shrinks only the encoder/decoder widths; hop 512, rates and
  vq_strides stay, so a frame is still 2048 samples).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from snac import SNAC
from tokenizers import Tokenizer

from fasttts.models.random_llm import ORPHEUS_LLAMA_FULL, ORPHEUS_LLAMA_TINY, default_special_tokens, write_random_llm, write_tokenizer

RELEASE_CUSTOM_TOKENS = 156_940 - 128_256
"""``<custom_token_N>`` count of the release (control tokens, 7 bands of 4096 codes, 2 spare)."""

SNAC_24KHZ: dict[str, Any] = {
    "sampling_rate": 24000,
    "encoder_dim": 48,
    "encoder_rates": [2, 4, 8, 8],
    "decoder_dim": 1024,
    "decoder_rates": [8, 8, 4, 2],
    "attn_window_size": None,
    "codebook_size": 4096,
    "codebook_dim": 8,
    "vq_strides": [4, 2, 1],
    "noise": True,
    "depthwise": True,
}
"""hubertsiuzdak/snac_24khz ``config.json``."""
SNAC_TINY: dict[str, Any] = {**SNAC_24KHZ, "encoder_dim": 8, "decoder_dim": 64}


def write_random_snac(out_dir: str | Path, config: dict[str, Any], *, seed: int = 0) -> Path:
    """A SNAC directory with random weights that decode to finite, non-silent audio.

    PyTorch's default initialisation already gives audible noise; only the output bias is zeroed
    so the waveform is not pushed towards the tanh's rail. Weight-norm tensors are stored under
    the classic ``weight_g``/``weight_v`` names of checkpoints saved before snac moved to
    parametrizations; ``load_state_dict`` maps them onto the current modules.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    model = SNAC(**config)
    with torch.no_grad():
        model.decoder.model[-2].bias.zero_()  # the final WNConv1d before Tanh
    state = {
        key.replace(".parametrizations.weight.original0", ".weight_g").replace(".parametrizations.weight.original1", ".weight_v"): value
        for key, value in model.state_dict().items()
    }
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    torch.save(state, out / "pytorch_model.bin")
    return out


def _tokenizer_args(size: str) -> dict[str, Any]:
    if size not in ("tiny", "full"):
        raise ValueError(f"size must be tiny or full, not {size!r}")
    special = default_special_tokens("llama")
    special = {**special, "additional_special_tokens": [*special["additional_special_tokens"], "<|finetune_right_pad_id|>"]}
    return dict(arch="llama", added_tokens=[f"<custom_token_{n}>" for n in range(RELEASE_CUSTOM_TOKENS)], special_tokens=special)


def write_orpheus_tokenizer(out_dir: str | Path, *, size: str = "full") -> Tokenizer:
    """Only the tokenizer files of a ``size`` Orpheus LLM directory (for tests of the tokenizer)."""
    preset = ORPHEUS_LLAMA_FULL if size == "full" else ORPHEUS_LLAMA_TINY
    return write_tokenizer(out_dir, release=size == "full", max_position=preset["max_position"], **_tokenizer_args(size))


def write_random_orpheus(out_dir: str | Path, *, size: str = "tiny", seed: int = 0, llm_size: dict[str, Any] | None = None) -> Path:
    """Write an Orpheus LLM directory with a ``snac/`` subfolder (see the module docstring).
    ``llm_size`` replaces the LLM's shape (tests: vLLM's CPU attention takes only some head sizes)."""
    args = _tokenizer_args(size)
    out = Path(out_dir)
    write_random_llm(
        out,
        size=llm_size or (ORPHEUS_LLAMA_FULL if size == "full" else ORPHEUS_LLAMA_TINY),
        seed=seed,
        dtype="bfloat16" if size == "full" else "float32",
        release_tokenizer=size == "full",
        **args,
    )
    write_random_snac(out / "snac", SNAC_24KHZ if size == "full" else SNAC_TINY, seed=seed)
    return out
