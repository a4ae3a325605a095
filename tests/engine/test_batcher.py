"""The codec micro-batcher: batches concurrent calls, isolates bad items, never blocks the loop."""

import asyncio
import threading

import pytest

from fasttts.engine.batcher import MicroBatcher


async def test_concurrent_items_share_batches_and_get_their_own_results():
    calls: list[int] = []
    threads: set[int] = set()

    def double(items):
        calls.append(len(items))
        threads.add(threading.get_ident())
        return [x * 2 for x in items]

    batcher = MicroBatcher(double, batch_size=8, wait_timeout=0.05)
    results = await asyncio.gather(*(batcher.submit(i) for i in range(8)))
    assert results == [i * 2 for i in range(8)]
    assert max(calls) > 1, "concurrent items were never batched together"
    assert sum(calls) == 8
    assert threading.get_ident() not in threads, "the batch function ran on the event loop thread"
    assert batcher.mean_occupancy > 1
    await batcher.close()


async def test_batch_size_is_a_hard_cap():
    sizes: list[int] = []

    def ident(items):
        sizes.append(len(items))
        return list(items)

    batcher = MicroBatcher(ident, batch_size=3, wait_timeout=0.05)
    await asyncio.gather(*(batcher.submit(i) for i in range(10)))
    assert max(sizes) <= 3 and sum(sizes) == 10
    await batcher.close()


async def test_only_the_bad_item_fails():
    def reciprocal(items):
        return [1 / x for x in items]

    batcher = MicroBatcher(reciprocal, batch_size=4, wait_timeout=0.05)
    results = await asyncio.gather(*(batcher.submit(x) for x in (1, 2, 0, 4)), return_exceptions=True)
    assert results[0] == 1 and results[1] == 0.5 and results[3] == 0.25
    assert isinstance(results[2], ZeroDivisionError)
    # and the batcher keeps serving
    assert await batcher.submit(5) == 0.2
    await batcher.close()


async def test_wrong_result_count_is_an_error_not_a_hang():
    batcher = MicroBatcher(lambda items: [], batch_size=1, wait_timeout=0)
    with pytest.raises(RuntimeError, match="returned 0 results"):
        await asyncio.wait_for(batcher.submit(1), 5)
    await batcher.close()
