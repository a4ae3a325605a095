"""CPU linear layers per weight format, with the kernel measured at load.

Decoding one token at a time reads every weight once, so batch-1 speed is set by the bytes a
weight takes (4 in float32, 2 in bfloat16, 1 in int8) — but which PyTorch kernel reads them
fastest, and which still computes well at 8–32 rows, differs from CPU to CPU (measured on a
2-core AMD EPYC with AVX512-BF16: oneDNN's packed bfloat16 linear is ~1.3× faster than its
packed float32 one at 1 row and ~4× at 8 rows, while ``torch._weight_int8pack_mm`` is the
fastest int8 kernel at 1 row and falls behind bfloat16 at 8). So nothing is hard-coded: for the
model's layer shape, :func:`plan_for` times every kernel that can hold a format's weights at
1, 8 and 32 rows (and float32's, the floor no format should fall below), on enough distinct
matrices to spill the last-level cache, and keeps the best one over all three. One kernel for
every batch size, and only a batch-invariant one (a row's result bit-identical alone or among
others): kernels differ in rounding, so switching by batch size, or a kernel like MKL's sgemm
that treats one row differently, would make a request's tokens under a seed depend on how many
other requests share its decode steps.

Formats and their storage (all PyTorch's own ops; a kernel missing from this build, or one that
disagrees with ``F.linear`` on a probe, is left out):

* ``float32`` / ``bfloat16``: oneDNN packed weight (``torch.ops.mkldnn``, what ``torch.compile``
  uses on CPU), or the plain weight (``F.linear``, or for bfloat16 widened to float32 per call).
* ``bfloat16`` on CPUs without bfloat16 arithmetic (AVX2: oneDNN has no bfloat16 kernel there and
  ``F.linear``'s is slower than float32 from 8 rows on): the bfloat16 values held in float16 for
  FBGEMM's fp16 linear (16-bit weights widened in registers, float32 activations). Every bfloat16
  value in float16's normal range (6.1e-5 to 65504 in magnitude) is exact in float16; smaller
  ones keep an absolute error under 3e-8, which no dot product of an LLM's weights notices.
* ``int8``: weight-only, symmetric per-output-channel scales; ``_weight_int8pack_mm`` on bfloat16
  activations, or dequantised per call to bfloat16 / float32 for many rows.
* ``bfloat16`` and ``int8`` on AVX2 or AVX-512 CPUs where a C++ compiler is at hand: FastTTS's
  own kernels (:mod:`.x86_kernels`), weights packed as one sequential stream per thread and widened
  in registers, float32 activations. Measured on a 2-core AMD EPYC Zen 3 (AVX2 only): int8 decode
  at one row 2.2x ``_weight_int8pack_mm``'s, and no slower than float32 at 32 rows, where
  int8pack takes twice float32's time.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from fasttts.backends.torch_llm import x86_kernels

logger = logging.getLogger(__name__)

FORMATS = ("float32", "bfloat16", "int8")
ROW_BUCKETS = (1, 8, 32)  # rows per call the kernels are timed at
BATCH_HINT = 8  # the row count oneDNN tunes a packed layout for
PROBE_BYTES = 96 << 20  # float32 bytes of probe matrices per format: past any last-level cache
SLOWER_MARGIN = 1.1  # timing noise allowance before a format counts as slower than float32
ACTIVATION_DTYPE = {"float32": torch.float32, "bfloat16": torch.bfloat16, "int8": torch.bfloat16}

Storage = tuple[torch.Tensor, ...]
Run = Callable[[torch.Tensor, Storage, torch.Tensor | None], torch.Tensor]  # (x, stored weight, bias)


@dataclass(frozen=True)
class Layout:
    """One way to hold a format's weights, and the kernels that compute from that layout."""

    name: str
    store: Callable[[torch.Tensor], Storage]  # float32/bfloat16 weight [N, K] -> stored tensors
    kernels: dict[str, Run]
    activation: torch.dtype | None = None  # what the kernels take and return; None: the format's default

    def activation_for(self, fmt: str) -> torch.dtype:
        return self.activation or ACTIVATION_DTYPE[fmt]


def _packed(w: torch.Tensor, dtype: torch.dtype) -> Storage:
    return (torch.ops.mkldnn._reorder_linear_weight(w.to(dtype).contiguous(), BATCH_HINT),)


def _run_packed(x: torch.Tensor, s: Storage, bias: torch.Tensor | None) -> torch.Tensor:
    out: torch.Tensor = torch.ops.mkldnn._linear_pointwise(x, s[0], bias, "none", [], "")
    return out


def _plus(out: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """A kernel's fresh output with the bias added in place (kernels that take no bias)."""
    return out if bias is None else out.add_(bias)


FBGEMM_MIN_ROWS = 3  # FBGEMM's 1- and 2-row fp16 kernels round differently from its 3..6-row ones
FBGEMM_MAX_ROWS = 960  # longer inputs go in pieces of this many rows (a multiple of its 120-row blocks)


@functools.cache
def _fbgemm_rows() -> tuple[int, ...]:
    """``rows[m]``: how many rows to hand FBGEMM's fp16 linear for an ``m``-row input so that every
    row comes out bit-identical to that row computed alone. FBGEMM splits the rows into blocks of
    1-6 by a fixed table and its 1- and 2-row kernels round differently, so an input whose split
    leaves such a block is padded with zero rows to the next row count whose split does not.
    Measured once on a small matrix: the split depends on the row count only."""
    gen = torch.Generator().manual_seed(0)
    w = torch.ops.quantized.linear_prepack_fp16(torch.randn(16, 64, generator=gen), None)
    x = torch.randn(FBGEMM_MAX_ROWS + 8, 64, generator=gen)
    with torch.no_grad():
        padded = F.pad(x[:, None], (0, 0, 0, FBGEMM_MIN_ROWS - 1))  # [M, 3, K]: each row and two zero rows
        alone = torch.stack([torch.ops.quantized.linear_dynamic_fp16(r, w)[0] for r in padded])
        clean = [m >= FBGEMM_MIN_ROWS and torch.equal(torch.ops.quantized.linear_dynamic_fp16(x[:m], w), alone[:m]) for m in range(len(x) + 1)]
    rows = [next((t for t in range(m, len(clean)) if clean[t]), 0) for m in range(FBGEMM_MAX_ROWS + 1)]
    if not clean[FBGEMM_MAX_ROWS] or 0 in rows[1:]:
        raise RuntimeError("FBGEMM's fp16 linear splits rows in a way this padding does not cover")
    return tuple(rows)


def _fp16_store(w: torch.Tensor) -> Storage:
    """The format's bfloat16 values, packed by FBGEMM as float16 (exact: see the module docstring)."""
    return (torch.ops.quantized.linear_prepack_fp16(w.to(torch.bfloat16).float().contiguous(), None),)


def _run_fbgemm_fp16(x: torch.Tensor, s: Storage, bias: torch.Tensor | None) -> torch.Tensor:
    rows = x.shape[0]
    if rows > FBGEMM_MAX_ROWS:
        return torch.cat([_run_fbgemm_fp16(x[i : i + FBGEMM_MAX_ROWS], s, bias) for i in range(0, rows, FBGEMM_MAX_ROWS)])
    padded = _fbgemm_rows()[rows]
    if padded != rows:
        x = F.pad(x, (0, 0, 0, padded - rows))
    out: torch.Tensor = torch.ops.quantized.linear_dynamic_fp16(x, s[0])
    return _plus(out[:rows], bias)


@functools.cache
def fbgemm_fp16_works() -> bool:
    """FBGEMM's fp16 linear exists in this build and CPU (x86 builds) and agrees with ``F.linear``."""
    return _agrees(LAYOUTS["bfloat16"][2], "fbgemm", "bfloat16")


def fp16_linear(x: torch.Tensor, stored: Storage) -> torch.Tensor:
    """float32 ``x @ wᵀ`` from a weight packed by :func:`fp16_pack` (16-bit reads, float32 sums),
    each row's result independent of the rows beside it."""
    return _run_fbgemm_fp16(x.float(), stored, None)


def fp16_pack(w: torch.Tensor) -> Storage:
    """A bfloat16 weight packed for :func:`fp16_linear` (exact: see the module docstring)."""
    return _fp16_store(w)


QUANTIZE_BLOCK_BYTES = 1 << 20  # float32 bytes of weight rows widened at a time by _quantize


def _quantize(w: torch.Tensor) -> Storage:
    """Symmetric per-output-channel int8: ``w ≈ q * scale[:, None]``. Every row is its own channel,
    so it is computed a block of rows at a time (the same numbers as all at once): the float32
    intermediates stay a few MB instead of twice the layer in float32 (a 9728x896 gate/up: 70 MB
    beside the 9 MB it packs to), which at load would have outgrown the int8 model's own size."""
    q = torch.empty(w.shape, dtype=torch.int8)
    scale = torch.empty(w.shape[0], dtype=torch.float32)
    step = max(1, QUANTIZE_BLOCK_BYTES // (4 * w.shape[1]))
    for i in range(0, w.shape[0], step):
        rows = w[i : i + step].float()
        s = scale[i : i + step]
        torch.clamp_min(rows.abs().amax(dim=1) / 127, torch.finfo(torch.float32).tiny, out=s)
        q[i : i + step] = torch.round(rows / s[:, None]).clamp_(-127, 127)
    return q, scale.to(torch.bfloat16), scale


def _dequantized_linear(x: torch.Tensor, s: Storage, bias: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor:
    """``x @ (q * scale)ᵀ`` as ``(x @ qᵀ) * scale``: one widening pass over the weight (int8
    values are exact in bfloat16), the per-channel scale applied to the few output rows instead."""
    return _plus((F.linear(x.to(dtype), s[0].to(dtype)) * s[2 if dtype == torch.float32 else 1]).to(x.dtype), bias)


def _x86_int8_store(w: torch.Tensor) -> Storage:
    q, _, scale = _quantize(w)
    return x86_kernels.pack(q), scale


def _run_x86_int8(x: torch.Tensor, s: Storage, bias: torch.Tensor | None) -> torch.Tensor:
    return _plus(x86_kernels.int8_linear(x, s[0], s[1]), bias)


def _run_x86_bf16(x: torch.Tensor, s: Storage, bias: torch.Tensor | None) -> torch.Tensor:
    return _plus(x86_kernels.bf16_linear(x, s[0]), bias)


X86_KERNEL = f"fasttts-{x86_kernels.ISA}"  # names the instruction set in the plan's log line


LAYOUTS: dict[str, tuple[Layout, ...]] = {
    "float32": (
        Layout("packed", functools.partial(_packed, dtype=torch.float32), {"onednn": _run_packed}),
        Layout("plain", lambda w: (w.float().contiguous(),), {"linear": lambda x, s, b: F.linear(x, s[0], b)}),
    ),
    "bfloat16": (
        Layout("packed", functools.partial(_packed, dtype=torch.bfloat16), {"onednn": _run_packed}),
        Layout(
            "plain",
            lambda w: (w.to(torch.bfloat16).contiguous(),),
            {
                "linear": lambda x, s, b: F.linear(x, s[0], b),
                "widen-f32": lambda x, s, b: _plus(F.linear(x.float(), s[0].float()).to(x.dtype), b),
            },
        ),
        Layout("fp16", _fp16_store, {"fbgemm": _run_fbgemm_fp16}, activation=torch.float32),
        Layout("x86", lambda w: (x86_kernels.pack(w.to(torch.bfloat16)),), {X86_KERNEL: _run_x86_bf16}, activation=torch.float32),
    ),
    "int8": (
        Layout(
            "int8",
            _quantize,
            {
                "int8pack": lambda x, s, b: _plus(torch._weight_int8pack_mm(x.contiguous(), s[0], s[1]), b),
                "dequant-bf16": functools.partial(_dequantized_linear, dtype=torch.bfloat16),
                "dequant-f32": functools.partial(_dequantized_linear, dtype=torch.float32),
            },
        ),
        Layout("x86", _x86_int8_store, {X86_KERNEL: _run_x86_int8}, activation=torch.float32),
    ),
}


@dataclass(frozen=True)
class Plan:
    """A format's chosen layout and kernel, with its milliseconds per row bucket and float32's."""

    format: str
    layout: Layout
    kernel: str
    ms: tuple[float, ...]  # one per ROW_BUCKETS entry
    float32_ms: tuple[float, ...]
    batch_invariant: bool  # a row's result does not depend on the rows computed with it

    @property
    def run(self) -> Run:
        return self.layout.kernels[self.kernel]

    @property
    def activation(self) -> torch.dtype:
        """The dtype the kernel takes and returns: the model's activations in this plan."""
        return self.layout.activation_for(self.format)

    @property
    def slower_than_float32(self) -> list[int]:
        """Row buckets where this format measured slower than float32 (empty: never)."""
        return [b for b, ms, ref in zip(ROW_BUCKETS, self.ms, self.float32_ms) if ms > ref * SLOWER_MARGIN]

    def describe(self) -> str:
        times = ", ".join(f"{ms:.2f} ms at {b} row{'s' if b > 1 else ''} (float32 {ref:.2f})" for b, ms, ref in zip(ROW_BUCKETS, self.ms, self.float32_ms))
        variant = "" if self.batch_invariant else "; NOT batch-invariant (no invariant kernel in this build)"
        return f"{self.format} weights, {self.layout.name} layout, {self.kernel} kernel: {times}{variant}"


def _agrees(layout: Layout, name: str, fmt: str) -> bool:
    """The kernel exists in this build and matches ``F.linear`` in float32 on a small probe."""
    gen = torch.Generator().manual_seed(0)
    w, x = torch.randn(24, 64, generator=gen), torch.randn(3, 64, generator=gen)
    try:
        with torch.no_grad():
            got = layout.kernels[name](x.to(layout.activation_for(fmt)), layout.store(w), None).float()
    except (RuntimeError, AttributeError, NotImplementedError) as exc:  # op missing in this build / CPU
        logger.debug("%s kernel %s unavailable: %s", fmt, name, exc)
        return False
    tol = {"float32": 1e-4, "bfloat16": 0.15, "int8": 0.3}[fmt]  # |x|·|w| ~ 8 here; bf16 inputs round at 2^-8
    return got.shape == (3, 24) and bool(torch.allclose(got, F.linear(x, w), atol=tol, rtol=0.02))


def _invariant(run: Run, x: torch.Tensor, stored: Storage) -> bool:
    """Row 0's output is bit-identical whether computed alone or among 3..32 rows. MKL's sgemm,
    for one, takes a different path for one row than for many; such a kernel would make a
    request's tokens depend on how many others share its decode steps."""
    with torch.no_grad():
        alone = run(x[:1], stored, None)
        return all(torch.equal(run(x[:rows], stored, None)[:1], alone) for rows in (3, 8, 17, 32))


def _time(run: Run, x: torch.Tensor, weights: list[Storage], reps: int = 3) -> float:
    """Best-of-``reps`` milliseconds per matrix for one pass over distinct ``weights``."""
    best = float("inf")
    with torch.no_grad():
        run(x, weights[0], None)
        for _ in range(reps):
            t0 = time.perf_counter()
            for s in weights:
                run(x, s, None)
            best = min(best, (time.perf_counter() - t0) / len(weights))
    return best * 1e3


Measured = dict[tuple[str, str], tuple[tuple[float, ...], bool]]  # (layout, kernel) -> (ms per bucket, invariant)


def _measure(fmt: str, out_features: int, in_features: int) -> Measured:
    """Times (per row bucket) and batch invariance of every working kernel of ``fmt`` at this shape."""
    count = min(32, max(2, -(-PROBE_BYTES // (4 * out_features * in_features))))  # tiny layers: no cache to spill
    gen = torch.Generator().manual_seed(0)
    dense = [torch.randn(out_features, in_features, generator=gen) / in_features**0.5 for _ in range(count)]
    x_all = torch.randn(max(ROW_BUCKETS), in_features, generator=gen)
    found: Measured = {}
    for layout in LAYOUTS[fmt]:
        names = [n for n in layout.kernels if _agrees(layout, n, fmt)]
        if not names:
            continue
        weights = [layout.store(w) for w in dense]
        x = x_all.to(layout.activation_for(fmt))
        for name in names:
            run = layout.kernels[name]
            found[(layout.name, name)] = (tuple(_time(run, x[:rows], weights) for rows in ROW_BUCKETS), _invariant(run, x, weights[0]))
        del weights
    return found


def _best_plan(fmt: str, found: Measured, float32_ms: tuple[float, ...]) -> Plan:
    """One kernel for every row count (switching kernels by batch size would change a row's
    numbers with its neighbours): among batch-invariant kernels — those no slower than float32 at
    any row bucket if there are any — the one whose times, each relative to the fastest kernel
    at that row bucket, sum to the least."""
    if not found:
        raise RuntimeError(f"no {fmt} linear kernel works in this PyTorch build")
    pool = {k: v for k, v in found.items() if v[1]} or found
    if float32_ms:
        pool = {k: v for k, v in pool.items() if all(t <= ref * SLOWER_MARGIN for t, ref in zip(v[0], float32_ms))} or pool
    best_at = [min(ms[i] for ms, _ in found.values()) for i in range(len(ROW_BUCKETS))]
    (layout_name, kernel), (ms, invariant) = min(pool.items(), key=lambda kv: sum(t / b for t, b in zip(kv[1][0], best_at)))
    layout = next(lay for lay in LAYOUTS[fmt] if lay.name == layout_name)
    return Plan(fmt, layout, kernel, ms, float32_ms or ms, invariant)


@functools.cache
def plan_for(fmt: str, out_features: int, in_features: int, threads: int) -> Plan:
    """Measure ``fmt``'s kernels (and float32's) for an ``out × in`` layer with ``threads`` threads
    and return the fastest plan; cached, since the answer depends only on these and the CPU."""
    del threads  # part of the cache key: the timings depend on it
    f32 = _best_plan("float32", _measure("float32", out_features, in_features), ())
    if fmt == "float32":
        return f32
    return _best_plan(fmt, _measure(fmt, out_features, in_features), f32.ms)


class CpuLinear(nn.Module):
    """``nn.Linear`` replacement (inference only) holding its weight and computing as a
    :class:`Plan` says."""

    def __init__(self, linear: nn.Linear, plan: Plan) -> None:
        super().__init__()
        self.in_features, self.out_features, self.plan = linear.in_features, linear.out_features, plan
        self.stored = plan.layout.store(linear.weight.detach())
        # FBGEMM's packed float16 weight is no tensor: its bytes, for fasttts.checkpoint.held_bytes
        self.opaque_bytes = sum(2 * linear.weight.numel() for s in self.stored if not isinstance(s, torch.Tensor))
        self.bias = None if linear.bias is None else linear.bias.detach().to(plan.activation)
        self._run = plan.run  # bound once: this is called ~100 times per decode step

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._run(x, self.stored, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, format={self.plan.format}"


def largest_linear(model: nn.Module) -> tuple[int, int]:
    """(out, in) of the biggest ``nn.Linear`` under ``model``: the shape the kernels are timed on."""
    shapes = [(m.out_features, m.in_features) for m in model.modules() if isinstance(m, nn.Linear)]
    return max(shapes, key=lambda s: s[0] * s[1])


def pack_linears(
    model: nn.Module, device: torch.device, fmt: str, plan: Plan | None = None, fill: Callable[[str, nn.Linear], None] | None = None
) -> Plan | None:
    """Replace every ``nn.Linear`` under ``model`` by a :class:`CpuLinear` of format ``fmt`` (CPU
    only; ``plan`` defaults to the measured best for the model's largest layer). Returns the plan
    used, or None where nothing was replaced. The original weights are released. ``fill``, if
    given, is called with each linear's qualified name under ``model`` and the linear just before
    it is packed: a loader reads the weights there, so one plain weight exists at a time."""
    if device.type != "cpu" or fmt not in FORMATS or not any(isinstance(m, nn.Linear) for m in model.modules()):
        return None
    plan = plan or plan_for(fmt, *largest_linear(model), torch.get_num_threads())
    # (parent, name) pairs, not the linears themselves: a list of modules would keep every plain
    # weight alive until the last layer is packed, the whole decoder held twice at the peak
    sites = [(prefix, parent, name) for prefix, parent in model.named_modules() for name, child in parent.named_children() if isinstance(child, nn.Linear)]
    with torch.no_grad():
        for prefix, parent, name in sites:
            if fill is not None:
                fill(f"{prefix}.{name}" if prefix else name, getattr(parent, name))
            setattr(parent, name, CpuLinear(getattr(parent, name), plan))  # the plain weight goes here
    return plan
