"""The conformance suite every LLM backend passes, on a tiny random Spark LLM.

A backend's test module subclasses :class:`Conformance` and provides a ``backend`` fixture (a
started backend on :func:`tiny_spark_llm`). Whatever the random weights, the contract of
:mod:`fasttts.backends.base` must hold: Spark prompts give token streams that the Spark output
grammar accepts, stop ids end a request (and are yielded), ``max_tokens`` and a complete
constraint end it, closing the consumer frees the request, a seed fixes the tokens, and
concurrent requests are all served.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Sequence
from pathlib import Path

import pytest

from fasttts.backends.base import GenerationRequest, LLMBackend, Ranges, TokenConstraint
from fasttts.backends.engine_thread import EngineThreadBackend
from fasttts.errors import InvalidRequestError
from fasttts.models.random_llm import SPARK_QWEN2_TINY, load_tokenizer, write_random_llm
from fasttts.models.spark.tokens import SPARK_ADDED_TOKENS, SparkGrammar, SparkVocab

TEXTS = ["Hello, world! This is a small test.", "The quick brown fox jumps over the lazy dog, twice."]


# Head size 64 as in the real Spark LLM (896 / 14): vLLM's CPU attention supports only a few sizes.
TINY_SIZE = {**SPARK_QWEN2_TINY, "hidden": 128, "heads": 2, "kv_heads": 1, "intermediate": 256}


@functools.cache
def _write_tiny_spark_llm(root: Path) -> Path:
    # Qwen2 specials (<|endoftext|>, <|im_start|>, <|im_end|>) are write_random_llm's qwen2 default.
    return write_random_llm(root, arch="qwen2", size=TINY_SIZE, added_tokens=SPARK_ADDED_TOKENS, seed=21)


def tiny_spark_llm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny random Spark LLM directory, written once per test session."""
    return _write_tiny_spark_llm(tmp_path_factory.getbasetemp() / "tiny-spark-llm")


class SparkPrompts:
    """Spark prompts (token ids) for the tiny LLM, built the way the Spark engine builds them."""

    def __init__(self, llm_dir: Path) -> None:
        self.tokenizer = load_tokenizer(llm_dir)
        self.vocab = SparkVocab.from_tokenizer(self.tokenizer)

    def text(self, i: int) -> list[int]:
        return self.tokenizer.encode(TEXTS[i % len(TEXTS)], add_special_tokens=False).ids

    def create(self, i: int = 0) -> tuple[list[int], SparkGrammar]:
        return self.vocab.create_prompt(self.text(i), gender=i % 2, pitch=2, speed=2), SparkGrammar(self.vocab, "create")

    def clone(self, i: int = 0, *, with_semantics: bool) -> tuple[list[int], SparkGrammar]:
        globals_ = [(17 * k + i) % 4096 for k in range(32)]
        semantics = [(101 * k + i) % 8192 for k in range(12)] if with_semantics else None
        ids = self.vocab.clone_prompt(self.text(i), globals_, semantics, None)
        return ids, SparkGrammar(self.vocab, "semantic" if with_semantics else "after_globals")


def assert_well_formed(tokens: Sequence[int], grammar: TokenConstraint, stop_ids: frozenset[int], max_tokens: int) -> None:
    """Every token was allowed where it stands; the stream ends at a stop, completion or max_tokens."""
    assert tokens, "no token generated"
    for i, tok in enumerate(tokens):
        ranges = grammar.allowed(tokens[:i])
        assert ranges is None or any(lo <= tok < hi for lo, hi in ranges), f"token {i} ({tok}) outside {ranges}"
        if i < len(tokens) - 1:
            assert tok not in stop_ids, f"generation went on after stop id {tok} at {i}"
    ended = tokens[-1] in stop_ids or grammar.is_complete(tokens) or len(tokens) == max_tokens
    assert ended and len(tokens) <= max_tokens


class ForceStop(TokenConstraint):
    """``free`` semantic-range tokens, then only ``stop``, then the semantic range again (a backend
    that ignored the stop id would go on)."""

    def __init__(self, semantic: tuple[int, int], stop: int, free: int) -> None:
        self.semantic, self.stop, self.free = semantic, stop, free

    def allowed(self, generated: Sequence[int]) -> Ranges:
        return ((self.stop, self.stop + 1),) if len(generated) == self.free else (self.semantic,)


class CompleteAfter(TokenConstraint):
    """The semantic range, complete after ``n`` tokens (no stop id involved)."""

    def __init__(self, semantic: tuple[int, int], n: int) -> None:
        self.semantic, self.n = semantic, n

    def allowed(self, generated: Sequence[int]) -> Ranges:
        return (self.semantic,)

    def is_complete(self, generated: Sequence[int]) -> bool:
        return len(generated) >= self.n


async def collect(backend: LLMBackend, **kw) -> list[int]:
    return [t async for t in backend.generate(GenerationRequest(**kw))]


async def wait_idle(backend: LLMBackend, timeout: float = 60.0) -> None:
    """Once every consumer has gone: no request may stay active. An engine thread drops a cancelled
    request at its next step (waited for, ``timeout`` guarding a hang); an event-loop backend
    (vLLM, SGLang) has dropped it by the time the consumer's ``aclose`` returned."""
    if isinstance(backend, EngineThreadBackend):
        assert await backend.wait_idle(timeout), f"{backend.num_active} request(s) still active"
    assert backend.num_active == 0, f"{backend.num_active} request(s) still active"


@pytest.mark.asyncio(loop_scope="session")
class Conformance:
    """Subclass as ``TestXxxConformance`` and provide the ``backend`` fixture."""

    seed_determinism = True
    """False for a backend that cannot fix its random stream per request."""

    def batched_requests(self, backend: LLMBackend) -> int | None:
        """The most requests the backend served in one step so far (None: it cannot tell)."""
        return None

    @pytest.fixture(scope="class")
    def spark(self, tmp_path_factory: pytest.TempPathFactory) -> SparkPrompts:
        return SparkPrompts(tiny_spark_llm(tmp_path_factory))

    # ------------------------------------------------------------------ well-formed output
    @pytest.mark.parametrize("mode", ["create", "clone", "clone+semantics"])
    async def test_spark_streams_follow_the_grammar(self, backend: LLMBackend, spark: SparkPrompts, mode: str) -> None:
        for i in range(2):
            ids, grammar = spark.create(i) if mode == "create" else spark.clone(i, with_semantics=mode == "clone+semantics")
            max_tokens = grammar.prefix_length + 24
            tokens = await collect(
                backend,
                prompt_ids=ids,
                max_tokens=max_tokens,
                temperature=0.8,
                top_k=50,
                top_p=0.95,
                repetition_penalty=1.1,
                stop_ids=spark.vocab.stop_ids,
                seed=i,
                constraint=grammar,
            )
            assert_well_formed(tokens, grammar, spark.vocab.stop_ids, max_tokens)
            assert len(tokens) > grammar.prefix_length  # globals (create) and at least one semantic token

    # ------------------------------------------------------------------ ending
    async def test_stop_id_ends_the_request_and_is_yielded(self, backend: LLMBackend, spark: SparkPrompts) -> None:
        v = spark.vocab
        ids, _ = spark.create(0)
        tokens = await collect(
            backend, prompt_ids=ids, max_tokens=40, temperature=1.0, seed=1, stop_ids=v.stop_ids, constraint=ForceStop(v.semantic_range(), v.eos, free=5)
        )
        assert len(tokens) == 6 and tokens[-1] == v.eos

    async def test_complete_constraint_ends_the_request(self, backend: LLMBackend, spark: SparkPrompts) -> None:
        ids, _ = spark.create(1)
        tokens = await collect(backend, prompt_ids=ids, max_tokens=40, temperature=1.0, seed=2, constraint=CompleteAfter(spark.vocab.semantic_range(), 7))
        assert len(tokens) == 7

    @pytest.mark.parametrize("max_tokens", [1, 9])
    async def test_max_tokens_is_honoured(self, backend: LLMBackend, spark: SparkPrompts, max_tokens: int) -> None:
        ids, grammar = spark.create(0)
        assert len(await collect(backend, prompt_ids=ids, max_tokens=max_tokens, temperature=0.0)) == max_tokens
        constrained = await collect(backend, prompt_ids=ids, max_tokens=max_tokens, temperature=1.0, seed=3, stop_ids=spark.vocab.stop_ids, constraint=grammar)
        assert len(constrained) == max_tokens  # shorter than the grammar's prefix: no stop possible yet
        assert_well_formed(constrained, grammar, spark.vocab.stop_ids, max_tokens)

    # ------------------------------------------------------------------ sampling options
    async def test_greedy_and_its_equivalents_agree(self, backend: LLMBackend, spark: SparkPrompts) -> None:
        ids, grammar = spark.clone(0, with_semantics=True)
        common = dict(prompt_ids=ids, max_tokens=12, constraint=grammar)
        greedy = await collect(backend, temperature=0.0, **common)
        assert greedy == await collect(backend, temperature=0.0, **common)
        assert greedy == await collect(backend, temperature=1.0, top_k=1, seed=5, **common)
        assert greedy == await collect(backend, temperature=1.0, top_p=1e-9, seed=6, **common)

    async def test_a_seed_fixes_the_tokens(self, backend: LLMBackend, spark: SparkPrompts) -> None:
        if not self.seed_determinism:
            pytest.skip("this backend cannot fix a request's random stream")
        ids, grammar = spark.clone(1, with_semantics=True)
        common = dict(prompt_ids=ids, max_tokens=16, temperature=1.0, constraint=grammar)
        first = await collect(backend, seed=123, **common)
        assert first == await collect(backend, seed=123, **common)
        assert first != await collect(backend, seed=124, **common)  # 8192 choices a step: a tie is ~impossible

    # ------------------------------------------------------------------ cancellation and concurrency
    async def test_closing_the_consumer_frees_the_request(self, backend: LLMBackend, spark: SparkPrompts) -> None:
        v = spark.vocab
        ids, grammar = spark.create(0)
        endless = backend.generate(
            GenerationRequest(prompt_ids=ids, max_tokens=1000, temperature=1.0, seed=7, constraint=CompleteAfter(v.semantic_range(), 10_000))
        )
        other = asyncio.create_task(collect(backend, prompt_ids=ids, max_tokens=30, temperature=1.0, seed=8, stop_ids=v.stop_ids, constraint=grammar))
        got = [await anext(endless) for _ in range(3)]
        await endless.aclose()
        assert len(got) == 3
        tokens = await other  # the neighbour is not disturbed
        assert_well_formed(tokens, grammar, v.stop_ids, 30)
        await wait_idle(backend)

    async def test_eight_concurrent_requests(self, backend: LLMBackend, spark: SparkPrompts) -> None:
        v = spark.vocab
        jobs = []
        for i in range(8):
            ids, grammar = spark.create(i) if i % 2 else spark.clone(i, with_semantics=i % 4 == 0)
            max_tokens = grammar.prefix_length + 16
            req = dict(prompt_ids=ids, max_tokens=max_tokens, temperature=0.9, top_k=100, seed=100 + i, stop_ids=v.stop_ids, constraint=grammar)
            jobs.append((grammar, max_tokens, asyncio.create_task(collect(backend, **req))))
        for grammar, max_tokens, task in jobs:
            assert_well_formed(await task, grammar, v.stop_ids, max_tokens)
        batched = self.batched_requests(backend)
        assert batched is None or batched > 1, "concurrent requests were served one at a time"
        await wait_idle(backend)

    async def test_an_empty_prompt_is_an_invalid_request(self, backend: LLMBackend) -> None:
        with pytest.raises(InvalidRequestError):
            await collect(backend, prompt_ids=[], max_tokens=4)
