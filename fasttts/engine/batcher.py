"""Dynamic micro-batching for the codec stages (reference encoding, audio decoding).

Concurrent requests each submit one item; the batcher waits up to ``wait_timeout`` for up to
``batch_size`` items, runs the batch function once in a worker thread that ends with it (never on the event loop),
and hands each caller its own result. If the batch function raises, every item is retried alone,
so only the bad item fails.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from fasttts.threads import FreshThreadExecutor

Item = TypeVar("Item")
Result = TypeVar("Result")

BatchFn = Callable[[Sequence[Item]], Sequence[Result]]


@dataclass
class _Pending(Generic[Item, Result]):
    item: Item
    future: asyncio.Future[Result]


class MicroBatcher(Generic[Item, Result]):
    """Collects concurrent single-item calls into batched calls of ``fn``.

    ``fn`` receives a list of items and must return one result per item, in order; it is the
    place that pads inputs to a common length and trims each output back to its own length.
    """

    def __init__(
        self,
        fn: BatchFn[Item, Result],
        *,
        batch_size: int = 1,
        wait_timeout: float = 0.01,
        executor: concurrent.futures.Executor | None = None,
        name: str = "batcher",
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self._fn = fn
        self.batch_size = batch_size
        self.wait_timeout = wait_timeout
        self.name = name
        # a thread per batch by default, ended after it: see fasttts.threads (batches still run one
        # at a time, since _run awaits each)
        self._executor = executor or FreshThreadExecutor(name)
        self._queue: asyncio.Queue[_Pending[Item, Result]] | None = None
        self._task: asyncio.Task[None] | None = None
        self.batches_run = 0
        self.items_run = 0
        self.last_batch_size = 0

    async def submit(self, item: Item) -> Result:
        """Queue one item and wait for its result (or its own exception)."""
        self._ensure_started()
        assert self._queue is not None
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        await self._queue.put(_Pending(item, future))
        return await future

    @property
    def mean_occupancy(self) -> float:
        """Average items per batch so far (batch occupancy metric)."""
        return self.items_run / self.batches_run if self.batches_run else 0.0

    def _ensure_started(self) -> None:
        if self._task is None or self._task.done():
            self._queue = asyncio.Queue()
            self._task = asyncio.get_running_loop().create_task(self._run(), name=self.name)

    async def _run(self) -> None:
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._queue.get()]
            deadline = loop.time() + self.wait_timeout
            while len(batch) < self.batch_size:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(self._queue.get(), remaining))
                except asyncio.TimeoutError:
                    break
            batch = [p for p in batch if not p.future.done()]  # callers that gave up
            if batch:
                await self._run_batch(batch)

    async def _run_batch(self, batch: list[_Pending[Item, Result]]) -> None:
        loop = asyncio.get_running_loop()
        items = [p.item for p in batch]
        self.batches_run += 1
        self.items_run += len(items)
        self.last_batch_size = len(items)
        try:
            results = await loop.run_in_executor(self._executor, self._fn, items)
            if len(results) != len(items):
                raise RuntimeError(f"{self.name}: batch function returned {len(results)} results for {len(items)} items")
        except Exception:
            if len(batch) == 1:
                _settle(batch[0], exc=_current_exception())
                return
            for pending in batch:  # isolate the bad item: rerun each alone
                try:
                    (result,) = await loop.run_in_executor(self._executor, self._fn, [pending.item])
                except Exception as exc:
                    _settle(pending, exc=exc)
                else:
                    _settle(pending, result=result)
            return
        for pending, result in zip(batch, results):
            _settle(pending, result=result)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
        self._executor.shutdown(wait=False, cancel_futures=True)


def _current_exception() -> BaseException:
    import sys

    exc = sys.exc_info()[1]
    assert exc is not None
    return exc


def _settle(pending: _Pending[Any, Any], *, result: object = None, exc: BaseException | None = None) -> None:
    if pending.future.done():
        return
    if exc is not None:
        pending.future.set_exception(exc)
    else:
        pending.future.set_result(result)
