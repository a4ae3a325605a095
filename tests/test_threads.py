"""fasttts.threads: work runs on threads that are gone once it returns, so none keeps an OpenMP
team alive beside the torch engine thread's."""

from __future__ import annotations

import asyncio
import subprocess
import sys
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
    slow = executor.submit(lambda: threading.Event().wait(0.2) or threading.current_thread())
    executor.shutdown(wait=True)
    assert slow.done() and not slow.result().is_alive()
    for t in threads:
        t.join(timeout=5)
        assert not t.is_alive()
    with pytest.raises(RuntimeError):
        executor.submit(int)


async def test_a_batcher_runs_each_batch_on_a_thread_that_ends_with_it() -> None:
    # (a long-lived executor thread would keep an OpenMP team beside the engine thread's)
    batcher = MicroBatcher(lambda items: [threading.current_thread() for _ in items], batch_size=4, name="probe")
    first = await asyncio.gather(*(batcher.submit(i) for i in range(3)))
    first[0].join(timeout=5)
    assert not first[0].is_alive() and first[0] is not threading.current_thread()
    assert len(set(first)) == 1  # one batch, one thread
    (second,) = await asyncio.gather(batcher.submit(9))
    assert second is not first[0]
    await batcher.close()


def test_a_running_call_finishes_before_the_process_exits(tmp_path) -> None:
    # the engine's shutdown does not wait for a codec batch in flight; exiting beneath it aborted the process
    done = tmp_path / "done"
    script = (
        "import time; from fasttts.threads import FreshThreadExecutor\n"
        "pool = FreshThreadExecutor('late')\n"
        f"pool.submit(lambda: (time.sleep(0.5), open({str(done)!r}, 'w').write('ok')))\n"
        "pool.shutdown(wait=False)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert done.read_text() == "ok"
