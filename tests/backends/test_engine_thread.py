"""The engine thread shared by the torch, llama-cpp and mlx-lm backends, on a model-free engine:
tokens reach their requests, a failing step fails its requests but not the thread, cancellation
and shutdown reach every request, and a setup error reaches the caller."""

from __future__ import annotations

import asyncio
import contextlib
import threading

import pytest

from fasttts.backends.base import GenerationRequest, check_request
from fasttts.backends.engine_thread import END, EngineThread, ThreadRequest, stream
from fasttts.errors import BackendError, InvalidRequestError

pytestmark = pytest.mark.asyncio


class Counter(EngineThread):
    """Emits 0, 1, 2, ... to every request, one token per step; fails a step on token ``fail_at``."""

    name = "counter"

    def __init__(self, *, fail_at: int | None = None, setup_error: Exception | None = None, block: bool = False) -> None:
        self.fail_at, self.setup_error, self.block = fail_at, setup_error, block
        self.live: list[ThreadRequest] = []
        self.admitted = threading.Event()  # set as the thread takes requests in: what a test waits on
        self.released: list[ThreadRequest] = []
        self.closed = False
        super().__init__()
        self.start()

    def setup(self) -> None:
        if self.setup_error is not None:
            raise self.setup_error

    def close(self) -> None:
        self.closed = True

    def admit(self, newcomers: list[ThreadRequest]) -> None:
        self.live.extend(newcomers)
        self.admitted.set()

    def requests(self) -> list[ThreadRequest]:
        return list(self.live)

    def release(self, req: ThreadRequest) -> None:
        self.live.remove(req)
        self.released.append(req)

    def step(self, out: list[tuple[ThreadRequest, object]]) -> None:
        for req in [r for r in self.live if r.cancelled]:
            self.retire(req)
        if self.block:
            return
        for req in list(self.live):
            token = len(req.generated)
            if token == self.fail_at:
                raise RuntimeError("boom")
            req.generated.append(token)
            out.append((req, token))
            if token + 1 == req.request.max_tokens:
                out.append((req, END))
                self.retire(req)


async def _collect(engine: EngineThread, max_tokens: int) -> list[int]:
    req = ThreadRequest(request=GenerationRequest(prompt_ids=[1], max_tokens=max_tokens))
    async with contextlib.aclosing(stream(engine, req)) as tokens:
        return [t async for t in tokens]


async def test_tokens_reach_every_request_and_finished_ones_are_released() -> None:
    engine = Counter()
    try:
        assert await asyncio.gather(_collect(engine, 3), _collect(engine, 5)) == [[0, 1, 2], [0, 1, 2, 3, 4]]
        assert engine.num_active == 0 and len(engine.released) == 2
    finally:
        engine.stop()
    assert engine.closed


async def test_a_failing_step_fails_its_requests_and_the_thread_serves_on() -> None:
    engine = Counter(fail_at=2)
    try:
        results = await asyncio.gather(_collect(engine, 5), _collect(engine, 5), return_exceptions=True)
        assert all(isinstance(r, BackendError) and "counter backend step failed: boom" in str(r) for r in results)
        assert engine.num_active == 0
        assert await _collect(engine, 2) == [0, 1]  # still serving
    finally:
        engine.stop()


async def test_closing_the_consumer_cancels_and_stopping_fails_the_rest() -> None:
    engine = Counter(block=True)
    req = ThreadRequest(request=GenerationRequest(prompt_ids=[1], max_tokens=5))
    tokens = stream(engine, req)
    waiting = asyncio.create_task(tokens.__anext__())
    assert await asyncio.to_thread(engine.admitted.wait, 10)  # the thread holds the request
    waiting.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await waiting
    await tokens.aclose()
    assert await asyncio.to_thread(engine.wait_idle, 10)  # the timeout only guards a hang
    assert req.cancelled and engine.released == [req] and engine.num_active == 0

    engine.admitted.clear()
    pending = asyncio.create_task(_collect(engine, 5))
    assert await asyncio.to_thread(engine.admitted.wait, 10)
    await asyncio.to_thread(engine.stop)
    with pytest.raises(BackendError, match="counter backend shut down"):
        await pending


async def test_a_setup_error_reaches_the_caller() -> None:
    with pytest.raises(ValueError, match="no model"):
        Counter(setup_error=ValueError("no model"))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (dict(prompt_ids=[]), "the prompt is empty"),
        (dict(prompt_ids=list(range(10))), "the prompt has 10 tokens; the limit is 7"),
        (dict(prompt_ids=[3, 99]), r"prompt token ids must be in \[0, 50\)"),
        (dict(top_p=0.0), "invalid sampling parameters"),
        (dict(temperature=-1.0), "invalid sampling parameters"),
    ],
)
async def test_check_request_names_what_is_wrong(change: dict, message: str) -> None:
    request = GenerationRequest(**{"prompt_ids": [1, 2], "max_tokens": 4, **change})
    with pytest.raises(InvalidRequestError, match=message):
        check_request(request, max_length=8, vocab_size=50)
    check_request(GenerationRequest(prompt_ids=[1, 2], max_tokens=4), max_length=8, vocab_size=50)
