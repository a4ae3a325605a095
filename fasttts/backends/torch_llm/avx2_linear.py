"""FastTTS's own AVX2 weight-only linears (``avx2_linear.cpp``), built on first use.

PyTorch's stock kernels leave most of a 2-core AVX2 CPU's memory bandwidth unused at one row:
``_weight_int8pack_mm`` is compute-bound there and FBGEMM's fp16 linear reads four weight rows
at once. The C++ kernels read each layer as one packed, sequential stream and stay
batch-invariant by construction (see the source's header), so :mod:`cpu_linear` offers them as
one more layout and keeps them only where they measure best.

The source is compiled by ``torch.utils.cpp_extension`` (g++ and ninja, ~20 s once, cached under
``$TORCH_EXTENSIONS_DIR`` or ``~/.cache/torch_extensions``; concurrent processes wait on one
build). Without a compiler, or on a CPU without AVX2/FMA, :func:`ops` returns None and the stock
kernels are used.
"""

from __future__ import annotations

import functools
import logging
import platform
from pathlib import Path
from typing import Any

import torch

logger = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("avx2_linear.cpp")
FLAGS = ["-O3", "-mavx2", "-mfma", "-mf16c", "-fopenmp"]  # OpenMP: ATen's parallel_for, on torch's own libgomp


@functools.cache
def ops() -> Any | None:
    """``torch.ops.fasttts_avx2`` (``pack``, ``int8_linear``, ``bf16_linear``), or None where it
    cannot be built or run here."""
    if platform.machine().lower() not in ("x86_64", "amd64") or torch.backends.cpu.get_cpu_capability() not in ("AVX2", "AVX512"):
        return None
    try:
        from torch.utils import cpp_extension

        cpp_extension.load(name="fasttts_avx2", sources=[str(SOURCE)], extra_cflags=FLAGS, extra_ldflags=["-fopenmp"], is_python_module=False)
    except Exception as exc:  # no compiler / ninja / headers: the stock kernels remain
        logger.info("FastTTS's AVX2 linear kernels are not available (%s); using PyTorch's", str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        return None
    return torch.ops.fasttts_avx2


def _kernels() -> Any:
    kernels = ops()
    if kernels is None:
        raise NotImplementedError("FastTTS's AVX2 kernels are not built on this machine")
    return kernels


def pack(w: torch.Tensor) -> torch.Tensor:
    """``w`` ([N, K], K a multiple of 8) reordered as the kernels read it."""
    packed: torch.Tensor = _kernels().pack(w.contiguous())
    return packed


def int8_linear(x: torch.Tensor, q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """float32 ``x @ (q * scale[:, None])ᵀ`` for a :func:`pack`-ed int8 ``q`` and float32 ``scale``."""
    out: torch.Tensor = _kernels().int8_linear(x.contiguous(), q, scale)
    return out


def bf16_linear(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """float32 ``x @ wᵀ`` for a :func:`pack`-ed bfloat16 ``w``."""
    out: torch.Tensor = _kernels().bf16_linear(x.contiguous(), w)
    return out


if __name__ == "__main__":  # `python -m fasttts.backends.torch_llm.avx2_linear`: build ahead (the Docker image does)
    logging.basicConfig(level=logging.INFO)
    print("built" if ops() is not None else "not built (see the log above)")
