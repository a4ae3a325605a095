"""The torch backend: format fidelity against transformers, strict loading, sampling semantics,
continuous batching, cancellation and a responsive event loop, on tiny random Qwen2/Llama dirs."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import aclosing, asynccontextmanager
from pathlib import Path

import pytest
import torch
import transformers
from safetensors.torch import load_file, save_file

from fasttts.backends.base import GenerationRequest, Ranges, TokenConstraint
from fasttts.backends.registry import BackendConfig, create_backend
from fasttts.backends.torch_backend import TorchBackend
from fasttts.backends.torch_llm import cpu_linear, loader, x86_kernels
from fasttts.backends.torch_llm.cpu_linear import CpuLinear, pack_linears
from fasttts.backends.torch_llm.kv_cache import KVCache
from fasttts.backends.torch_llm.loader import load_model
from fasttts.backends.torch_llm.model import AttnBatch, CausalLM
from fasttts.backends.torch_llm.sampling import SamplingState, allowed_mask, sample, vocab_window
from fasttts.errors import InvalidRequestError, ModelLoadError
from fasttts.models.random_llm import ORPHEUS_LLAMA_TINY, SPARK_QWEN2_TINY, write_random_llm

HF_CLASSES = {"qwen2": transformers.Qwen2ForCausalLM, "llama": transformers.LlamaForCausalLM}


@pytest.fixture(scope="module")
def dirs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("llm")
    return {
        "qwen2": write_random_llm(root / "qwen2", arch="qwen2", size=SPARK_QWEN2_TINY, seed=11),
        "llama": write_random_llm(root / "llama", arch="llama", size={**ORPHEUS_LLAMA_TINY, "tie_word_embeddings": False}, seed=11),
    }


@asynccontextmanager
async def running(model_dir: Path, **kw) -> AsyncIterator[TorchBackend]:
    kw.setdefault("dtype", "float32")  # what transformers computes in the fidelity tests
    backend = TorchBackend(BackendConfig(model_dir=str(model_dir), device="cpu", max_length=kw.pop("max_length", 4096), **kw), prefill_chunk=16)
    await backend.start()
    try:
        yield backend
    finally:
        await backend.shutdown()


async def collect(backend: TorchBackend, **kw) -> list[int]:
    return [t async for t in backend.generate(GenerationRequest(**kw))]


def prompt(n: int, seed: int = 0) -> list[int]:
    return torch.randint(0, 400, (n,), generator=torch.Generator().manual_seed(seed)).tolist()


def hf_model(model_dir: Path, arch: str) -> torch.nn.Module:
    return HF_CLASSES[arch].from_pretrained(model_dir, dtype=torch.float32, attn_implementation="eager").eval()


# ----------------------------------------------------------------------------- format fidelity
def _cache(model: CausalLM, slots: int = 2) -> KVCache:
    cfg = model.cfg
    return KVCache(
        num_layers=cfg.num_layers,
        num_kv_heads=cfg.num_kv_heads,
        head_dim=cfg.head_dim,
        max_slots=slots,
        max_capacity=4096,
        dtype=model.activation_dtype,
        device=torch.device("cpu"),
        initial_capacity=8,
    )


def _prefill(model: CausalLM, cache: KVCache, slot: int, ids: list[int], start: int) -> torch.Tensor:
    n, end = len(ids), start + len(ids)
    cache.ensure_capacity(end)
    pos = torch.arange(start, end)
    batch = AttnBatch(
        slots=torch.full((n,), slot),
        positions=pos,
        key_slots=slice(slot, slot + 1),
        key_len=end,
        mask=(torch.arange(end)[None] <= pos[:, None])[None, None],
        queries_per_seq=n,
    )
    return model.logits(model(torch.tensor(ids), batch, cache))


@pytest.mark.parametrize("arch", ["qwen2", "llama"])
@pytest.mark.parametrize("impl", ["eager", "sdpa"])
def test_logits_equal_transformers_for_chunked_prefill_and_batched_decode(dirs, arch: str, impl: str) -> None:
    ref = hf_model(dirs[arch], arch)
    model = load_model(dirs[arch], device="cpu", dtype="float32", attn_implementation=impl)
    seqs = [prompt(40, seed=1), prompt(29, seed=2)]
    with torch.no_grad():
        expected = [ref(torch.tensor([s])).logits[0] for s in seqs]
    cache = _cache(model)
    slots = [cache.acquire(), cache.acquire()]
    got: list[list[torch.Tensor]] = [[], []]
    with torch.inference_mode():
        for i, (seq, slot) in enumerate(zip(seqs, slots)):  # prompts minus 5 tokens, in chunks of 7
            for start in range(0, len(seq) - 5, 7):
                got[i].append(_prefill(model, cache, slot, seq[start : min(start + 7, len(seq) - 5)], start))
        for step in range(5):  # then both sequences decode together (different lengths: masked)
            pos = torch.tensor([len(s) - 5 + step for s in seqs])
            cache.ensure_capacity(int(pos.max()) + 1)
            batch = AttnBatch(
                slots=torch.tensor(slots),
                positions=pos,
                key_slots=torch.tensor(slots),
                key_len=int(pos.max()) + 1,
                mask=(torch.arange(int(pos.max()) + 1)[None] <= pos[:, None])[:, None, None],
                queries_per_seq=1,
            )
            logits = model.logits(model(torch.tensor([s[p] for s, p in zip(seqs, pos.tolist())]), batch, cache))
            for i in range(2):
                got[i].append(logits[i : i + 1])
    for i in range(2):
        assert torch.allclose(torch.cat(got[i]), expected[i], atol=1e-4, rtol=1e-4)
    assert cache.capacity >= 40  # grew on demand from 8


@pytest.mark.parametrize("arch", ["qwen2", "llama"])
async def test_greedy_generation_equals_transformers_generate(dirs, arch: str) -> None:
    ids = prompt(12, seed=5)
    ref = hf_model(dirs[arch], arch)
    ref.generation_config.eos_token_id = None
    out = ref.generate(torch.tensor([ids]), max_new_tokens=10, do_sample=False, pad_token_id=0)[0, len(ids) :].tolist()
    async with running(dirs[arch]) as backend:
        assert await collect(backend, prompt_ids=ids, max_tokens=10, temperature=0.0) == out


# ----------------------------------------------------------------------------- loading
def test_strict_loader_names_missing_unexpected_and_misshaped_tensors(dirs, tmp_path: Path) -> None:
    for f in dirs["qwen2"].iterdir():
        (tmp_path / f.name).write_bytes(f.read_bytes())
    tensors = load_file(str(tmp_path / "model.safetensors"))
    del tensors["model.layers.1.mlp.up_proj.weight"]
    tensors["model.layers.0.self_attn.extra.weight"] = torch.zeros(2)
    tensors["model.norm.weight"] = torch.ones(3)
    save_file(tensors, str(tmp_path / "model.safetensors"))
    with pytest.raises(ModelLoadError) as err:
        load_model(tmp_path, device="cpu")
    msg = err.value.message
    assert "model.layers.1.mlp.up_proj.weight" in msg and "model.layers.0.self_attn.extra.weight" in msg
    assert "model.norm.weight (checkpoint [3], model [64])" in msg


def test_loader_refuses_directories_without_config_or_weights(dirs, tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="config.json"):
        load_model(tmp_path, device="cpu")
    (tmp_path / "config.json").write_bytes((dirs["qwen2"] / "config.json").read_bytes())
    with pytest.raises(ModelLoadError, match="model.safetensors"):
        load_model(tmp_path, device="cpu")


def test_sharded_checkpoint_loads_like_the_single_file(dirs, tmp_path: Path) -> None:
    sharded = write_random_llm(tmp_path, arch="llama", size={**ORPHEUS_LLAMA_TINY, "tie_word_embeddings": False}, seed=11, shard_bytes=50_000)
    a, b = load_model(sharded, device="cpu").state_dict(), load_model(dirs["llama"], device="cpu").state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_float16_qwen2_is_promoted_with_a_warning(dirs, caplog) -> None:
    with caplog.at_level(logging.WARNING):
        model = load_model(dirs["qwen2"], device="cpu", dtype="float16")
    assert model.lm_head_weight.dtype == torch.float32
    assert any("float16" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)
    assert load_model(dirs["llama"], device="cpu", dtype="float16").lm_head_weight.dtype == torch.float16
    auto = load_model(dirs["llama"], device="cpu", dtype="auto")  # measured: bfloat16 unless it is slower here
    assert auto.weight_format in ("float32", "bfloat16") and auto.activation_dtype == _activation(auto)
    assert auto.lm_head_weight.dtype == getattr(torch, auto.weight_format)  # embeddings stay in the format's dtype


def _activation(model: CausalLM) -> torch.dtype:
    """The activation dtype of the kernel the loader measured best for ``model``'s format."""
    return next(m.plan.activation for m in model.modules() if isinstance(m, CpuLinear))


# Logits of a lower-precision format against float32 on the same checkpoint, relative to the
# float32 logits' spread: bfloat16 rounds weights and activations at 2^-9 relative, int8 per-channel
# rounds each weight by up to max|w|/254; through 2 layers of a random tiny model that moves the
# largest of ~16k logits by under 0.25 (bf16) / 0.35 (int8) standard deviations and the mean by
# under 0.05, and the top token stays the top token at >= 85 % of positions.
LOGIT_TOLERANCE = {"bfloat16": (0.25, 0.05), "int8": (0.35, 0.05)}


def _assert_logits_near_float32(ref_model: CausalLM, model: CausalLM, fmt: str) -> None:
    """A 48-token prefill's logits in ``fmt`` within :data:`LOGIT_TOLERANCE` of float32's."""
    ids = prompt(48, seed=4)
    with torch.inference_mode():
        ref = _prefill(ref_model, _cache(ref_model), 0, ids, 0)
        got = _prefill(model, _cache(model), 0, ids, 0)
    err, spread = (got - ref).abs(), ref.std()
    max_tol, mean_tol = LOGIT_TOLERANCE[fmt]
    assert err.max() <= max_tol * spread and err.mean() <= mean_tol * spread
    assert (got.argmax(-1) == ref.argmax(-1)).float().mean() >= 0.85


@pytest.mark.parametrize("arch", ["qwen2", "llama"])
@pytest.mark.parametrize("fmt", ["bfloat16", "int8"])
def test_low_precision_logits_stay_near_float32(dirs, arch: str, fmt: str) -> None:
    ref_model, model = load_model(dirs[arch], device="cpu", dtype="float32"), load_model(dirs[arch], device="cpu", dtype=fmt)
    assert model.weight_format == fmt and model.activation_dtype == _activation(model) != torch.float16
    assert model.lm_head_weight.dtype == torch.bfloat16
    _assert_logits_near_float32(ref_model, model, fmt)


def test_bfloat16_head_slices_give_float32_logits_independent_of_slice_and_batch(dirs, monkeypatch) -> None:
    # a bfloat16 head's slice logits come from its rows packed in fixed chunks for FBGEMM (x86):
    # float32 sums of the exact bfloat16 weights, and a token's logit the same bits whichever
    # slice or batch row computed it (so a seed's tokens cannot depend on a neighbour's window)
    from fasttts.backends.torch_llm import model as model_module
    from fasttts.backends.torch_llm.cpu_linear import fbgemm_fp16_works

    monkeypatch.setattr(model_module, "HEAD_CHUNK_ROWS", 64)  # the tiny vocabulary holds a few chunks
    model = load_model(dirs["qwen2"], device="cpu", dtype="bfloat16")
    weight = model.lm_head_weight
    assert weight.dtype == torch.bfloat16
    hidden = torch.randn(5, weight.shape[1], generator=torch.Generator().manual_seed(3)).to(model.activation_dtype)
    lo, hi = 70, 70 + 2 * 64 + 37  # straddles three chunks
    assert hi <= weight.shape[0]
    with torch.inference_mode():
        got = model.logits(hidden, (lo, hi))
        ref = hidden.float() @ weight[lo:hi].float().T
        assert got.dtype == torch.float32 and got.shape == (5, hi - lo)
        assert torch.allclose(got, ref, atol=1e-4 * float(ref.abs().max()), rtol=0)
        inner = model.logits(hidden, (lo + 50, lo + 90))
        alone = model.logits(hidden[2:3], (lo, hi))
    if fbgemm_fp16_works():
        assert torch.equal(inner, got[:, 50:90])
        assert torch.equal(alone, got[2:3])
        assert model.opaque_bytes == 3 * 64 * weight.shape[1] * 2  # only the chunks read


@pytest.mark.parametrize("arch", ["qwen2", "llama"])
def test_int8_packed_linear_by_linear_equals_packing_the_model_read_whole(dirs, arch: str) -> None:
    # the loader reads and quantizes one linear at a time (issue 18: no bfloat16 decoder beside the
    # int8 one); the old way read every weight into a bfloat16 model first, then packed it
    model = load_model(dirs[arch], device="cpu", dtype="int8")
    with torch.device("meta"):
        whole = CausalLM(model.cfg)
    whole = whole.to(torch.bfloat16).to_empty(device="cpu")
    checkpoint = load_file(str(dirs[arch] / "model.safetensors"))
    with torch.no_grad():
        for name, tensor in whole.checkpoint_tensors().items():
            tensor.copy_(checkpoint[name])
    linears = [m for m in model.model.modules() if isinstance(m, CpuLinear)]
    pack_linears(whole.model, torch.device("cpu"), "int8", linears[0].plan)
    expected = [m for m in whole.model.modules() if isinstance(m, CpuLinear)]
    assert len(linears) == len(expected) == 4 * model.cfg.num_layers
    for got, want in zip(linears, expected):
        assert len(got.stored) == len(want.stored) >= 2 and all(torch.equal(a, b) and a.dtype == b.dtype for a, b in zip(got.stored, want.stored))
        assert (got.bias is None) == (want.bias is None) and (got.bias is None or torch.equal(got.bias, want.bias))


def test_int8_is_cpu_only(dirs) -> None:
    with pytest.raises(ModelLoadError, match="int8"):
        load_model(dirs["qwen2"], device="meta", dtype="int8")


def test_flash_attention_falls_back_to_sdpa(dirs, caplog) -> None:
    with caplog.at_level(logging.INFO):
        model = load_model(dirs["qwen2"], device="cpu", attn_implementation="flash_attention_2")
    assert model.attn_implementation == "sdpa" and any("sdpa" in r.getMessage() for r in caplog.records)


def test_registry_builds_the_torch_backend(dirs) -> None:
    assert isinstance(create_backend("torch", BackendConfig(model_dir=str(dirs["qwen2"]))), TorchBackend)


# ----------------------------------------------------------------------------- sampling semantics
def _low_precision_kernels():
    for fmt in ("bfloat16", "int8"):
        for layout in cpu_linear.LAYOUTS[fmt]:
            for name in layout.kernels:
                yield pytest.param(fmt, layout, name, id=f"{fmt}-{layout.name}-{name}")


@pytest.mark.parametrize(("fmt", "layout", "kernel"), list(_low_precision_kernels()))
def test_every_kernel_a_plan_can_pick_keeps_the_models_logits_near_float32(dirs, monkeypatch, fmt, layout, kernel) -> None:
    """The loader keeps whichever kernel measures best on the machine it runs on; a tiny model's
    shapes pick one of them here. Each, forced into the plan, keeps the whole model's logits within
    the format's tolerance of float32's (the kernel tests check one layer at a time)."""
    if not cpu_linear._agrees(layout, kernel, fmt):
        pytest.skip(f"{kernel} is not in this PyTorch build / CPU")
    ref_model = load_model(dirs["qwen2"], device="cpu", dtype="float32")
    forced = cpu_linear.Plan(fmt, layout, kernel, (1.0,) * 3, (1.0,) * 3, batch_invariant=True)
    monkeypatch.setattr(loader, "plan_for", lambda *_: forced)
    model = load_model(dirs["qwen2"], device="cpu", dtype=fmt)
    assert {m.plan.kernel for m in model.modules() if isinstance(m, CpuLinear)} == {kernel}
    assert {m.plan.format for m in ref_model.modules() if isinstance(m, CpuLinear)} == {"float32"}
    _assert_logits_near_float32(ref_model, model, fmt)


def _decode_two(model: CausalLM, seqs: list[list[int]], steps: int) -> torch.Tensor:
    """Prefill ``seqs`` minus their last ``steps`` tokens, then decode those together (masked:
    different lengths); the decode steps' logits [steps, 2, V]."""
    cache = _cache(model)
    slots = [cache.acquire(), cache.acquire()]
    out = []
    with torch.inference_mode():
        for seq, slot in zip(seqs, slots):
            _prefill(model, cache, slot, seq[:-steps], 0)
        for step in range(steps):
            pos = torch.tensor([len(s) - steps + step for s in seqs])
            cache.ensure_capacity(int(pos.max()) + 1)
            mask = (torch.arange(int(pos.max()) + 1)[None] <= pos[:, None])[:, None, None]
            batch = AttnBatch(slots=torch.tensor(slots), positions=pos, key_slots=slice(0, 2), key_len=int(pos.max()) + 1, mask=mask, queries_per_seq=1)
            out.append(model.logits(model(torch.tensor([s[p] for s, p in zip(seqs, pos.tolist())]), batch, cache)))
    return torch.stack(out)


@pytest.mark.parametrize("fmt", ["float32", "bfloat16"])
def test_cpu_decode_attends_in_one_kernel_call_as_eager_attention_does(dirs, fmt: str) -> None:
    """On an x86 CPU that builds FastTTS's kernels the loader sets the one-call decode attention;
    decoding with it gives eager attention's logits (float32: to summation order; bfloat16: its
    activations round differently once in a while)."""
    model = load_model(dirs["qwen2"], device="cpu", dtype=fmt)
    if x86_kernels.ops() is None:
        assert model.decode_attention is None
        pytest.skip("no x86 kernels on this machine: eager attention throughout")
    assert model.decode_attention is x86_kernels.decode_attention
    seqs = [prompt(30, seed=7), prompt(19, seed=8)]
    fused = _decode_two(model, seqs, steps=4)
    model.decode_attention = None
    eager = _decode_two(model, seqs, steps=4)
    tol = {"float32": 1e-5, "bfloat16": 0.05}[fmt] * eager.std()
    assert fused.shape == eager.shape and (fused - eager).abs().max() <= tol


SAMPLED = dict(temperature=1.0, top_k=50, top_p=0.9, repetition_penalty=1.3)


@pytest.mark.parametrize("fmt", ["float32", "bfloat16", "int8"])
async def test_same_seed_same_tokens_alone_or_in_a_busy_batch(dirs, fmt: str) -> None:
    """Within a format, a request's tokens do not depend on how many others share its decode steps
    (1, 6 and 20 rows: each row bucket the kernels are chosen for)."""
    ids = prompt(10, seed=3)
    async with running(dirs["qwen2"], dtype=fmt) as backend:
        alone = await collect(backend, prompt_ids=ids, max_tokens=24, seed=42, **SAMPLED)
        for crowd in (5, 19):
            others = [collect(backend, prompt_ids=prompt(5 + i % 7, seed=50 + i), max_tokens=30, seed=i, **SAMPLED) for i in range(crowd)]
            together, *_ = await asyncio.gather(collect(backend, prompt_ids=ids, max_tokens=24, seed=42, **SAMPLED), *others)
            assert together == alone, f"{crowd} neighbours changed the tokens"
        different = [await collect(backend, prompt_ids=ids, max_tokens=24, seed=s, temperature=1.5) for s in range(3)]
        assert backend.stats.max_batch > 16
    assert len(alone) == 24
    assert len({tuple(d) for d in different}) > 1


async def test_max_tokens_and_stop_ids(dirs) -> None:
    ids = prompt(8, seed=9)
    async with running(dirs["llama"]) as backend:
        full = await collect(backend, prompt_ids=ids, max_tokens=12, temperature=0.0)
        assert len(full) == 12
        stop = full[5]
        stopped = await collect(backend, prompt_ids=ids, max_tokens=12, temperature=0.0, stop_ids=frozenset({stop}))
        assert stopped == full[: full.index(stop) + 1]


async def test_generation_ends_at_max_length(dirs) -> None:
    async with running(dirs["qwen2"], max_length=20) as backend:
        out = await collect(backend, prompt_ids=prompt(15), max_tokens=100, temperature=0.0)
        assert len(out) == 5
        with pytest.raises(InvalidRequestError):
            await collect(backend, prompt_ids=prompt(20), max_tokens=1)


async def test_invalid_prompts_are_refused(dirs) -> None:
    async with running(dirs["qwen2"]) as backend:
        with pytest.raises(InvalidRequestError):
            await collect(backend, prompt_ids=[], max_tokens=3)
        with pytest.raises(InvalidRequestError):
            await collect(backend, prompt_ids=[10**7], max_tokens=3)


class Alternating(TokenConstraint):
    """Even steps in [100, 150), odd steps in [10, 20) or [300, 310); complete after ``n``."""

    def __init__(self, n: int) -> None:
        self.n = n

    def allowed(self, generated: Sequence[int]) -> Ranges | None:
        return ((100, 150),) if len(generated) % 2 == 0 else ((10, 20), (300, 310))

    def is_complete(self, generated: Sequence[int]) -> bool:
        return len(generated) >= self.n


async def test_constraint_ranges_and_completion_are_honoured(dirs) -> None:
    async with running(dirs["qwen2"]) as backend:
        outs = await asyncio.gather(
            collect(backend, prompt_ids=prompt(6, seed=1), max_tokens=100, constraint=Alternating(9), seed=1, **SAMPLED),
            collect(backend, prompt_ids=prompt(9, seed=2), max_tokens=100, constraint=Alternating(7), temperature=0.0),
            collect(backend, prompt_ids=prompt(7, seed=3), max_tokens=8, seed=3, **SAMPLED),  # unconstrained neighbour
        )
    assert [len(o) for o in outs] == [9, 7, 8]
    for out in outs[:2]:
        for i, tok in enumerate(out):
            assert (100 <= tok < 150) if i % 2 == 0 else (10 <= tok < 20 or 300 <= tok < 310)


@pytest.mark.parametrize("temperature", [0.0, 0.9])
def test_lm_head_slice_picks_what_full_logits_with_a_mask_pick(dirs, temperature: float) -> None:
    model = load_model(dirs["qwen2"], device="cpu", dtype="float32")
    hidden = torch.randn(6, model.cfg.hidden_size, generator=torch.Generator().manual_seed(0)) * 3
    allowed = [((200, 330),)] * 6
    window = vocab_window(allowed, model.cfg.vocab_size)
    assert window == (200, 330) and allowed_mask(allowed, window, hidden.device) is None

    def states() -> list[SamplingState]:
        return [SamplingState(temperature, 40, 0.95, 1.0, torch.Generator().manual_seed(i)) for i in range(6)]

    with torch.inference_mode():
        sliced = sample(model.logits(hidden, window), states(), None, None) + window[0]
        full_window = vocab_window([None], model.cfg.vocab_size)
        full = sample(model.logits(hidden), states(), None, allowed_mask(allowed, full_window, hidden.device))
    assert torch.equal(sliced, full) and bool(((full >= 200) & (full < 330)).all())


def test_repetition_penalty_discourages_seen_tokens() -> None:
    logits = torch.tensor([[2.0, 1.9, -1.0]])
    seen = torch.tensor([[True, False, False]])
    greedy = [SamplingState(0.0, 0, 1.0, 1.5, torch.Generator())]
    assert sample(logits, greedy, seen, None).item() == 1
    assert sample(logits, [SamplingState(0.0, 0, 1.0, 1.0, torch.Generator())], seen, None).item() == 0


def test_a_rows_pick_does_not_depend_on_its_neighbours_settings() -> None:
    logits = torch.randn(2, 300, generator=torch.Generator().manual_seed(2))
    for seed in range(20):
        plain = SamplingState(1.0, 0, 1.0, 1.0, torch.Generator().manual_seed(seed))
        alone = sample(logits[:1], [plain], None, None)
        plain.generator.manual_seed(seed)
        neighbour = SamplingState(0.7, 5, 0.5, 1.0, torch.Generator().manual_seed(99))
        assert sample(logits, [plain, neighbour], None, None)[0] == alone[0]


def test_top_k_one_is_greedy_whatever_the_seed() -> None:
    logits = torch.randn(4, 50, generator=torch.Generator().manual_seed(1))
    for seed in range(5):
        states = [SamplingState(1.0, 1, 1.0, 1.0, torch.Generator().manual_seed(seed)) for _ in range(4)]
        assert torch.equal(sample(logits, states, None, None), logits.argmax(-1))


# ----------------------------------------------------------------------------- batching, cancellation, event loop
async def test_eight_concurrent_requests_are_batched(dirs) -> None:
    async with running(dirs["llama"]) as backend:
        outs = await asyncio.gather(*(collect(backend, prompt_ids=prompt(4 + i, seed=i), max_tokens=20 + i, seed=i, **SAMPLED) for i in range(8)))
        assert [len(o) for o in outs] == [20 + i for i in range(8)]
        assert backend.stats.max_batch > 1 and backend.stats.mean_batch > 1
        assert backend.num_active == 0 and backend.scheduler.cache.num_used == 0


async def test_closing_the_consumer_cancels_and_frees_the_slot(dirs) -> None:
    async with running(dirs["qwen2"]) as backend:
        keep = asyncio.create_task(collect(backend, prompt_ids=prompt(5), max_tokens=40, temperature=0.0))
        stream = backend.generate(GenerationRequest(prompt_ids=prompt(6, seed=1), max_tokens=3000, temperature=0.0))
        got = [await anext(stream) for _ in range(3)]
        await stream.aclose()
        assert len(got) == 3
        assert len(await keep) == 40  # the neighbour finished undisturbed
        assert await backend.wait_idle(timeout=30)  # the timeout only guards a hang
        assert backend.scheduler.cache.num_used == 0 and backend.stats.cancelled == 1

        sixty = asyncio.Event()

        async def consume() -> None:
            async with aclosing(backend.generate(GenerationRequest(prompt_ids=prompt(6, seed=2), max_tokens=3000, temperature=0.0))) as tokens:
                count = 0
                async for _ in tokens:
                    count += 1
                    if count == 60:
                        sixty.set()

        task = asyncio.create_task(consume())
        await asyncio.wait_for(sixty.wait(), 60)  # well into generation
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await backend.wait_idle(timeout=30)
        assert backend.scheduler.cache.num_used == 0 and backend.stats.cancelled == 2


async def test_event_loop_keeps_ticking_while_generating(dirs) -> None:
    ticks: list[float] = []
    loop = asyncio.get_running_loop()

    async def ticker() -> None:
        while True:
            ticks.append(loop.time())
            await asyncio.sleep(0.01)

    async with running(dirs["qwen2"]) as backend:
        tick_task = asyncio.create_task(ticker())
        for _ in range(50):  # generate for at least ~30 ticks, however fast this machine is
            await asyncio.gather(*(collect(backend, prompt_ids=prompt(40, seed=i), max_tokens=150, seed=i, **SAMPLED) for i in range(4)))
            if len(ticks) > 30:
                break
        tick_task.cancel()
    gaps = [b - a for a, b in itertools.pairwise(ticks)]
    assert len(ticks) > 30
    assert max(gaps) < 2.0  # generous: the loop is never blocked by a model step
