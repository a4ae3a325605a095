"""FastTTS's own x86 CPU kernels, built on first use: weight-only linears (``x86_linear.cpp``)
and one-token decode attention (``x86_attention.cpp``).

PyTorch's stock kernels leave much of a small CPU's memory bandwidth unused at one row:
``_weight_int8pack_mm`` is compute-bound there and FBGEMM's fp16 linear reads four weight rows
at once. The linear kernels read each layer as one packed, sequential stream and stay
batch-invariant by construction (see the source's header), so :mod:`cpu_linear` offers them as
one more layout and keeps them only where they measure best. The attention kernel replaces the
dozen ATen calls of eager attention per layer and decode step by one (see its source's header).

The source is compiled by ``torch.utils.cpp_extension`` for the widest vectors the CPU has
(:data:`ISA`: 16-lane AVX-512 or 8-lane AVX2/FMA; g++ and ninja, ~20 s once, cached under
``$TORCH_EXTENSIONS_DIR`` or ``~/.cache/torch_extensions``; concurrent processes wait on one
build). Both builds compute the same numbers. Without a compiler, or on a CPU with neither,
:func:`ops` returns None and the stock kernels are used.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import platform
import re
from pathlib import Path
from typing import Any

import torch

logger = logging.getLogger(__name__)

SOURCES = [Path(__file__).with_name(name) for name in ("x86_linear.cpp", "x86_attention.cpp")]
HEADER = Path(__file__).with_name("x86_simd.h")
# OpenMP: ATen's parallel_for, which then runs on torch's own libgomp
FLAGS = {
    "avx512": ["-O3", "-mavx512f", "-mavx512bw", "-mavx512vl", "-mfma", "-DFASTTTS_AVX512", "-fopenmp"],
    "avx2": ["-O3", "-mavx2", "-mfma", "-mf16c", "-fopenmp"],
}


def _native_isa() -> str | None:
    """The widest instruction set both this CPU and torch's own dispatch use (None: neither)."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return None
    return {"AVX512": "avx512", "AVX2": "avx2"}.get(torch.backends.cpu.get_cpu_capability())


ISA = _native_isa()


def supported() -> list[str]:
    """Instruction sets this CPU runs, widest first (AVX-512 CPUs run the AVX2 build too)."""
    return ["avx512", "avx2"] if ISA == "avx512" else ["avx2"] if ISA == "avx2" else []


@functools.cache
def ops(isa: str | None = ISA) -> Any | None:
    """``torch.ops.fasttts_<isa>`` (``pack``, ``int8_linear``, ``bf16_linear``,
    ``decode_attention``), or None where it cannot be built or run here."""
    if isa is None or isa not in supported():
        return None
    library = f"fasttts_{isa}"  # the operators' namespace, fixed in the source
    # The build's name carries torch's version and the shared header's hash: torch's cache keys a
    # build on its sources and flags only, so it would reuse a library built against the old
    # headers after a torch upgrade, or from before a change to x86_simd.h.
    header = hashlib.sha256(HEADER.read_bytes()).hexdigest()[:12]
    build = f"{library}_torch_{re.sub(r'[^0-9A-Za-z]', '_', torch.__version__)}_{header}"
    try:
        from torch.utils import cpp_extension

        cpp_extension.load(name=build, sources=[str(f) for f in SOURCES], extra_cflags=FLAGS[isa], extra_ldflags=["-fopenmp"], is_python_module=False)
    except Exception as exc:  # no compiler / ninja / headers / writable cache: the stock kernels remain
        logger.info("FastTTS's %s kernels are not available (%s); using PyTorch's", isa, str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        return None
    return getattr(torch.ops, library)


def _kernels() -> Any:
    kernels = ops()
    if kernels is None:
        raise NotImplementedError("FastTTS's x86 kernels are not built on this machine")
    return kernels


def pack(w: torch.Tensor) -> torch.Tensor:
    """``w`` ([N, K]) reordered as the kernels read it (the same layout for every build)."""
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


HEAD_DIM_MULTIPLE = 16  # decode_attention's head dimension: whole vectors in either build


def decode_attention(q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, lengths: torch.Tensor, scale: float) -> torch.Tensor:
    """Each sequence's one query token (``q`` [B, H, D]) against its first ``lengths[b]`` cached
    keys and values ([B, Hkv, L, D], any strides but the last; H a multiple of Hkv), as eager
    attention computes it on a CPU (float32 throughout): [B, H·D] in ``q``'s dtype."""
    out: torch.Tensor = _kernels().decode_attention(q, keys, values, lengths, scale)
    return out


if __name__ == "__main__":  # `python -m fasttts.backends.torch_llm.x86_kernels`: build ahead (the Docker image does)
    logging.basicConfig(level=logging.INFO)
    print(f"{ISA} built" if ops() is not None else f"not built for {ISA} (see the log above)")
