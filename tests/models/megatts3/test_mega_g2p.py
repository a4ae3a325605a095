"""MegaTTS3's g2p LLM on the pluggable backends: greedy, and always well-formed under the phone
grammar (phones 3…173 or Chinese phone×tone ids, then EOS), on torch and on llama-cpp (GGUF)."""

from __future__ import annotations

from pathlib import Path

import pytest

from fasttts.backends.base import GenerationRequest
from fasttts.backends.registry import BackendConfig, create_backend
from fasttts.models.megatts3.g2p import G2PVocab, PhoneConstraint, split_merged
from fasttts.models.random_llm import load_tokenizer

pytestmark = pytest.mark.asyncio(loop_scope="module")

TEXTS = ("Hello there.", "A longer sentence, with a comma; and more words!", "你好，世界。")


def _request(vocab: G2PVocab, tokenizer, text: str, max_tokens: int = 40) -> GenerationRequest:
    prompt = vocab.prompt(tokenizer.encode("<BOT>" + text + "<BOS>").ids)
    return GenerationRequest(
        prompt_ids=prompt, max_tokens=max_tokens, temperature=0.0, top_k=1, stop_ids=frozenset({vocab.eos}), constraint=PhoneConstraint(vocab)
    )


def _check(ids: list[int], vocab: G2PVocab, max_tokens: int) -> None:
    assert 0 < len(ids) <= max_tokens
    body = ids[:-1] if ids[-1] == vocab.eos else ids
    assert vocab.eos not in body
    merged = [t - vocab.speech0 for t in body]
    assert all(3 <= m <= 173 or 201 <= m <= 788 for m in merged), merged
    phones, tones = split_merged(merged)
    assert all(3 <= p <= 173 for p in phones) and all(t in (3, 4, 11, 12, 13, 14, 15) for t in tones)


async def _run_backend(name: str, g2p_dir: Path) -> list[list[int]]:
    tokenizer = load_tokenizer(g2p_dir)
    vocab = G2PVocab.from_tokenizer(tokenizer)
    backend = create_backend(
        name,
        BackendConfig(
            model_dir=str(g2p_dir), device="cpu", dtype="float32" if name == "torch" else "auto", batch_size=4, output_ids=PhoneConstraint(vocab).vocabulary()
        ),
    )
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
