"""CPU linear layers per weight format: every kernel agrees with float32 ``F.linear`` within its
format's rounding, the measured plan covers every row count, and replacement keeps results."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fasttts.backends.torch_llm import cpu_linear, x86_kernels
from fasttts.backends.torch_llm.cpu_linear import FBGEMM_MAX_ROWS, FORMATS, LAYOUTS, ROW_BUCKETS, CpuLinear, pack_linears, plan_for

# Max |error| relative to the output's RMS, for unit-variance inputs and 1/sqrt(in)-scaled weights:
# bfloat16 rounds weights and inputs at 2^-9 relative (errors add up over the dot product as a
# random walk: ~1 % of the RMS); int8 per-channel rounds each weight by up to half a step,
# max|w|/254, ~1-2 % of the RMS. 4 % bounds the largest of a few thousand outputs.
TOLERANCE = {"float32": 1e-5, "bfloat16": 0.04, "int8": 0.04}


def _kernels():
    for fmt in FORMATS:
        for layout in LAYOUTS[fmt]:
            for name in layout.kernels:
                yield pytest.param(fmt, layout, name, id=f"{fmt}-{layout.name}-{name}")


@pytest.mark.parametrize(("fmt", "layout", "name"), list(_kernels()))
@pytest.mark.parametrize("rows", [1, 5, 33])
@pytest.mark.parametrize("with_bias", [False, True])
def test_every_kernel_matches_float32_within_its_format(fmt, layout, name, rows, with_bias):
    gen = torch.Generator().manual_seed(rows)
    w = torch.randn(96, 128, generator=gen) / 128**0.5
    x = torch.randn(rows, 128, generator=gen)
    bias = torch.randn(96, generator=gen) if with_bias else None
    try:
        stored = layout.store(w)
        with torch.no_grad():
            act = layout.activation_for(fmt)
            got = layout.kernels[name](x.to(act), stored, None if bias is None else bias.to(act)).float()
    except (RuntimeError, NotImplementedError) as exc:
        pytest.skip(f"kernel not in this build: {exc}")
    ref = F.linear(x, w, bias)
    assert got.shape == ref.shape
    assert (got - ref).abs().max() <= TOLERANCE[fmt] * ref.pow(2).mean().sqrt()


@pytest.mark.parametrize("fmt", FORMATS)
def test_plan_times_every_bucket_against_float32_and_is_batch_invariant(fmt):
    plan = plan_for(fmt, 48, 32, torch.get_num_threads())
    assert plan.format == fmt and plan.kernel in plan.layout.kernels
    assert len(plan.ms) == len(plan.float32_ms) == len(ROW_BUCKETS) and all(ms > 0 for ms in (*plan.ms, *plan.float32_ms))
    assert plan.batch_invariant  # every format has one here (oneDNN / int8pack)
    gen = torch.Generator().manual_seed(1)
    stored = plan.layout.store(torch.randn(48, 32, generator=gen))
    x = torch.randn(20, 32, generator=gen).to(plan.activation)
    with torch.no_grad():
        alone = plan.run(x[:1], stored, None)
        assert all(torch.equal(plan.run(x[:rows], stored, None)[:1], alone) for rows in (2, 9, 20))


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("bias", [True, False])
def test_pack_linears_replaces_every_linear_and_keeps_results(fmt, bias):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(32, 48, bias=bias), nn.ReLU(), nn.Sequential(nn.Linear(48, 32, bias=bias)))
    x = torch.randn(3, 32)
    with torch.no_grad():
        before = model(x)
        plan = pack_linears(model, torch.device("cpu"), fmt)
        after = model(x.to(plan.activation if plan else torch.float32)).float()
    assert plan is not None and plan.format == fmt
    assert not any(type(m) is nn.Linear for m in model.modules())
    assert sum(isinstance(m, CpuLinear) for m in model.modules()) == 2
    assert (after - before).abs().max() <= 2 * TOLERANCE[fmt] * before.pow(2).mean().sqrt() + 1e-6


def test_pack_linears_leaves_other_devices_and_formats_alone():
    model = nn.Sequential(nn.Linear(8, 8))
    assert pack_linears(model, torch.device("meta"), "bfloat16") is None  # CPU only
    assert pack_linears(model, torch.device("cpu"), "float16") is None  # no CPU float16 kernels here
    assert type(model[0]) is nn.Linear


def test_fbgemm_fp16_rows_come_out_as_computed_alone_whatever_the_row_count():
    """FBGEMM's 1- and 2-row fp16 kernels round differently from its larger ones; padding makes
    every row of every call (up to past one piece) bit-identical to that row computed alone."""
    layout = next(lay for lay in LAYOUTS["bfloat16"] if lay.name == "fp16")
    run = layout.kernels["fbgemm"]
    gen = torch.Generator().manual_seed(2)
    try:
        stored = layout.store(torch.randn(40, 48, generator=gen))
    except (RuntimeError, NotImplementedError) as exc:
        pytest.skip(f"kernel not in this build: {exc}")
    x = torch.randn(FBGEMM_MAX_ROWS + 50, 48, generator=gen)
    with torch.no_grad():
        alone = torch.cat([run(row, stored, None) for row in x.split(1)])
        for start, rows in [(0, n) for n in range(1, 70)] + [(5, 7), (11, 31), (0, FBGEMM_MAX_ROWS), (3, FBGEMM_MAX_ROWS + 40)]:
            assert torch.equal(run(x[start : start + rows], stored, None), alone[start : start + rows]), rows


def test_int8_quantizing_by_row_blocks_equals_quantizing_all_rows_at_once(monkeypatch):
    # blocks keep the float32 intermediates small at load; every row is its own channel, so the
    # packed values and scales must not depend on the block size (rows not a multiple of it)
    w = (torch.randn(203, 96, generator=torch.Generator().manual_seed(0)) * torch.linspace(0.01, 3, 203)[:, None]).to(torch.bfloat16)
    monkeypatch.setattr(cpu_linear, "QUANTIZE_BLOCK_BYTES", 1 << 30)
    at_once = LAYOUTS["int8"][0].store(w)
    monkeypatch.setattr(cpu_linear, "QUANTIZE_BLOCK_BYTES", 4 * 96 * 16)  # 16 rows a block
    blocked = LAYOUTS["int8"][0].store(w)
    assert [t.dtype for t in blocked] == [torch.int8, torch.bfloat16, torch.float32]
    assert all(torch.equal(a, b) for a, b in zip(at_once, blocked))


def _x86_build(isa: str):
    """The kernels built for ``isa`` (skipping where this CPU or machine cannot build or run them)."""
    kernels = x86_kernels.ops(isa)
    if kernels is None:
        pytest.skip(f"no {isa} build here: the CPU lacks it or no C++ compiler")
    return kernels


def _x86_run(kernels, fmt: str, w: torch.Tensor):
    """``fmt``'s weight ``w`` packed by ``kernels`` and a function computing ``x @ wᵀ`` from it."""
    if fmt == "int8":
        q, _, scale = cpu_linear._quantize(w)
        packed = kernels.pack(q)
        return lambda x: kernels.int8_linear(x, packed, scale)
    packed = kernels.pack(w.to(torch.bfloat16))
    return lambda x: kernels.bf16_linear(x, packed)


@pytest.mark.parametrize("isa", ["avx512", "avx2"])
@pytest.mark.parametrize("fmt", ["bfloat16", "int8"])
def test_x86_rows_come_out_as_computed_alone_whatever_the_row_count(fmt, isa):
    """FastTTS's x86 kernels take one path for a single row (widening in registers) and another
    for several (a widened panel, K in blocks of 64, rows in groups of up to 6): every row of
    every call is bit-identical to that row computed alone, a partial last tile of channels and
    a partial last K block included."""
    gen = torch.Generator().manual_seed(3)
    w, x = torch.randn(70, 200, generator=gen) / 200**0.5, torch.randn(45, 200, generator=gen)  # 64 + 6 channels; 3 x 64 + 8 K-steps
    run = _x86_run(_x86_build(isa), fmt, w)
    alone = torch.cat([run(row) for row in x.split(1)])
    for start, rows in [(0, n) for n in range(1, 46)] + [(7, 13), (20, 25)]:
        assert torch.equal(run(x[start : start + rows]), alone[start : start + rows]), rows
    assert (alone - F.linear(x, w)).abs().max() <= TOLERANCE[fmt] * F.linear(x, w).pow(2).mean().sqrt()


@pytest.mark.parametrize("fmt", ["bfloat16", "int8"])
def test_x86_builds_agree_bit_for_bit(fmt):
    """The AVX-512 and AVX2 builds run the same FMA chain per output, so a checkpoint decodes to
    the same tokens on either CPU (and a pack made by one is read by the other)."""
    wide, narrow = _x86_build("avx512"), _x86_build("avx2")
    gen = torch.Generator().manual_seed(4)
    w, x = torch.randn(136, 72, generator=gen), torch.randn(13, 72, generator=gen)
    q = cpu_linear._quantize(w)[0]
    assert torch.equal(wide.pack(q), narrow.pack(q)) and wide.pack(q).untyped_storage().nbytes() == narrow.pack(q).untyped_storage().nbytes()
    for rows in (1, 2, 7, 13):
        assert torch.equal(_x86_run(wide, fmt, w)(x[:rows]), _x86_run(narrow, fmt, w)(x[:rows])), rows


def test_x86_kernels_refuse_a_weight_their_pack_did_not_make():
    kernels = _x86_build(x86_kernels.ISA or "avx2")
    x, w = torch.randn(2, 64), torch.randn(70, 64).to(torch.bfloat16)
    with pytest.raises(RuntimeError, match="not made by pack"):
        kernels.bf16_linear(x, w)  # 70 channels: a plain tensor holds no padded last tile
    assert kernels.bf16_linear(x, kernels.pack(w)).shape == (2, 70)
