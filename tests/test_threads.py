"""fasttts.threads: work runs on threads that are gone once it returns, so none keeps an OpenMP
team alive beside the torch engine thread's."""

from __future__ import annotations

import asyncio
import threading

import pytest

from fasttts.engine.batcher import MicroBatcher
from fasttts.threads import FreshThreadExecutor, run_in_fresh_thread


def test_run_in_fresh_thread_returns_and_raises_from_a_thread_that_has_ended() -> None:
    seen: list[threading.Thread] = []

    def work() -> int:
        seen.append(threading.current_thread())
        return 7

    assert run_in_fresh_thread(work) == 7
    assert seen[0] is not threading.current_thread() and not seen[0].is_alive()
    with pytest.raises(ValueError, match="bad"):
        run_in_fresh_thread(lambda: (_ for _ in ()).throw(ValueError("bad")))


def test_each_call_gets_its_own_thread_and_none_outlives_it() -> None:
    executor = FreshThreadExecutor("t")
    threads = [executor.submit(threading.current_thread).result() for _ in range(3)]
    assert len({id(t) for t in threads}) == 3
    for t in threads:
        t.join(timeout=5)
        assert not t.is_alive()
    executor.shutdown()
    with pytest.raises(RuntimeError):
        executor.submit(int)


async def test_a_batcher_leaves_no_thread_behind() -> None:
    before = set(threading.enumerate())
    batcher = MicroBatcher(lambda items: [threading.current_thread() for _ in items], batch_size=4, name="probe")
    ran = await asyncio.gather(*(batcher.submit(i) for i in range(6)))
    await batcher.close()
    for t in set(ran):
        t.join(timeout=5)
    assert not [t for t in threading.enumerate() if t not in before and t.name.startswith("probe")]
    assert all(t is not threading.current_thread() for t in ran)
