"""Threads for model work that leave the torch engine thread the only long-lived OpenMP team.

PyTorch's CPU kernels run on OpenMP (libgomp in the PyPI wheels), and libgomp keeps a team of
worker threads for every thread that has run a parallel region, until that thread exits. Once
the process holds more OpenMP threads than CPUs, libgomp cuts its workers' spin-wait to almost
nothing, so every parallel region wakes them through the kernel. Measured on a 2-core Zen 5: a
100k-element ``torch.add`` took 6 us from the only thread with a team and 26-50 us once a second
long-lived thread had one; a full-size Spark LLM decode step went from 27 to 41 ms. The threads of
``asyncio.to_thread`` and of per-batcher executors live on, each with its team, so loading a model
there (the kernel timings at load are parallel) or running a codec batch there slowed every later
decode step. A thread that ends takes its team with it: work run here leaves none behind.
"""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def run_in_fresh_thread(fn: Callable[[], T], name: str = "fasttts-once") -> T:
    """``fn()`` on a new thread that ends when it returns (blocking; its exception is raised here)."""
    future: concurrent.futures.Future[T] = concurrent.futures.Future()
    _start(future, fn, name).join()
    return future.result()


class FreshThreadExecutor(concurrent.futures.Executor):
    """An executor that runs each call on a new thread, ended when the call returns."""

    def __init__(self, name: str = "fasttts-call") -> None:
        self._name = name
        self._closed = False
        self._threads: list[threading.Thread] = []

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> concurrent.futures.Future[T]:
        if self._closed:
            raise RuntimeError("cannot schedule new calls after shutdown")
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._threads = [t for t in self._threads if t.is_alive()]
        self._threads.append(_start(future, lambda: fn(*args, **kwargs), self._name))
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """No new calls; with ``wait``, return once the running ones have. (A call starts as it is
        submitted, so there is nothing queued for ``cancel_futures`` to cancel.)"""
        self._closed = True
        if wait:
            for thread in self._threads:
                thread.join()


def _start(future: concurrent.futures.Future[T], fn: Callable[[], T], name: str) -> threading.Thread:
    def run() -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            future.set_result(fn())
        except BaseException as exc:  # handed to the caller, like ThreadPoolExecutor does
            future.set_exception(exc)

    # not a daemon: the interpreter waits for a running call at exit (as for ThreadPoolExecutor's
    # workers) instead of tearing down torch beneath it, which aborted processes whose last codec
    # batch was still running ("terminate called without an active exception")
    thread = threading.Thread(target=run, name=name)
    thread.start()
    return thread
