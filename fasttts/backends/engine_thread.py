"""The engine thread that the torch, llama-cpp and mlx-lm backends share.

Each of these backends runs its model on one dedicated thread: the model is native code that must
never run on the event loop, its state (KV caches, MLX streams) belongs to one thread, and batching
is iteration-level (requests join and leave between steps). What differs is one step of the model,
:meth:`EngineThread.step`; this module holds the rest: the inbox and its condition,
submit/cancel/stop, failing every request when a step raises or the engine stops, delivering each
step's tokens to the requests' event loops, the async side (:func:`stream`) that a backend's
``generate`` consumes, which cancels the request when its consumer goes away, and
:class:`EngineThreadBackend`, which builds the engine on first use and stops it at shutdown.
"""

from __future__ import annotations

import abc
import asyncio
import enum
import logging
import threading
from collections import deque
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Generic, Literal, TypeVar

from fasttts.backends.base import GenerationRequest, LLMBackend
from fasttts.errors import BackendError
from fasttts.threads import run_in_fresh_thread

__all__ = ["END", "Delivery", "EngineThread", "EngineThreadBackend", "ThreadRequest", "deliver", "stream"]

logger = logging.getLogger(__name__)


class _End(enum.Enum):
    END = "end"


END: Final = _End.END
"""Queue item that ends a request's stream (after its last token). An enum member, not a bare
``object()``, so that ``item is END`` narrows a :data:`Delivery` to the token or error it else is."""

Delivery = int | BaseException | Literal[_End.END]
"""What a step hands a request: a token, ``END``, or the error that ends it."""


@dataclass(eq=False, kw_only=True)
class ThreadRequest:
    """One request as an engine thread sees it; backends subclass it with their own state.
    Created inside ``generate``, so ``loop`` is the consumer's event loop."""

    request: GenerationRequest
    loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.get_running_loop)
    queue: asyncio.Queue[Delivery] = field(default_factory=asyncio.Queue)
    generated: list[int] = field(default_factory=list)
    cancelled: bool = False


R = TypeVar("R", bound=ThreadRequest)


class EngineThread(abc.ABC, Generic[R]):
    """Owns a model on one thread and serves every request through :meth:`step`.

    Subclasses keep their requests (of their own :class:`ThreadRequest` subclass ``R``) in their
    own structures (admitted from :meth:`admit`), report them through :meth:`requests`, and end
    each one with :meth:`retire` (after putting ``END`` or an error in ``out``).
    """

    name = "engine"

    def __init__(self) -> None:
        self.num_active = 0  # submitted and not retired
        self._cond = threading.Condition()
        self._inbox: deque[R] = deque()
        self._stopping = False
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"{self.name}-engine", daemon=True)

    # ------------------------------------------------------------------ any thread
    def start(self) -> None:
        """Start the thread and wait for :meth:`setup` (its error, if any, is raised here)."""
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            self._thread.join()
            raise self._error

    def submit(self, req: R) -> None:
        with self._cond:
            self._inbox.append(req)
            self.num_active += 1
            self._cond.notify()

    def cancel(self, req: R) -> None:
        """Drop ``req`` at the next step (no-op once it has finished)."""
        with self._cond:
            req.cancelled = True
            self._cond.notify()

    def wait_idle(self, timeout: float) -> bool:
        """Block until no request is active (each finished, cancelled or failed); ``False`` if
        ``timeout`` seconds passed first."""
        with self._cond:
            return self._cond.wait_for(lambda: self.num_active == 0, timeout)

    def stop(self) -> None:
        """End the thread (pending requests get an error), then :meth:`close`."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread.is_alive():
            self._thread.join()
        self.close()

    # ------------------------------------------------------------------ for subclasses
    def setup(self) -> None:
        """Runs first, on the engine thread (for models that must be loaded there)."""

    def close(self) -> None:
        """Frees native resources once the thread has ended."""

    @abc.abstractmethod
    def admit(self, newcomers: list[R]) -> None:
        """Take newly submitted requests into the subclass's own structures (must not fail)."""

    @abc.abstractmethod
    def requests(self) -> list[R]:
        """Every admitted request not yet retired."""

    @abc.abstractmethod
    def step(self, out: list[tuple[R, Delivery]]) -> None:
        """Drop cancelled requests, run one model step; put each token, ``END`` or error in ``out``."""

    @abc.abstractmethod
    def release(self, req: R) -> None:
        """Forget ``req`` and free what it holds (KV cells, cache slot)."""

    def retire(self, req: R) -> None:
        """``req`` is done (finished, cancelled or failed): release it and count it out."""
        self.release(req)
        with self._cond:
            self.num_active -= 1
            self._cond.notify_all()  # wait_idle

    # ------------------------------------------------------------------ engine thread
    def _run(self) -> None:
        try:
            self.setup()
        except BaseException as exc:
            self._error = exc
            return
        finally:
            self._ready.set()
        while True:
            with self._cond:
                while not (self._stopping or self._inbox or self.requests()):
                    self._cond.wait()
                if self._stopping:
                    break
                newcomers = list(self._inbox)
                self._inbox.clear()
            self.admit(newcomers)
            out: list[tuple[R, Delivery]] = []
            try:
                self.step(out)
            except Exception as exc:  # never let the thread die: fail the requests it was serving
                logger.exception("%s step failed", self.name)
                for req in self.requests():
                    out.append((req, BackendError(f"{self.name} backend step failed: {exc}")))
                    self.retire(req)
            deliver(out)
        with self._cond:
            left = [*self._inbox, *self.requests()]
        deliver([(req, BackendError(f"{self.name} backend shut down")) for req in left])


E = TypeVar("E", bound=EngineThread[Any])


class EngineThreadBackend(LLMBackend, Generic[E]):
    """A backend served by an :class:`EngineThread` (of its own subclass ``E``), built on first use
    in a thread that ends with the build (:mod:`fasttts.threads`)."""

    def __init__(self) -> None:
        self._engine: E | None = None
        self._lock = asyncio.Lock()

    @abc.abstractmethod
    def _build(self) -> E:
        """Load the model and return its started engine (runs in a worker thread)."""

    async def start(self) -> None:
        if self._engine is not None:  # every generate() calls this: no lock once running
            return
        async with self._lock:
            if self._engine is None:
                # on a thread that ends with the build: see fasttts.threads
                self._engine = await asyncio.to_thread(run_in_fresh_thread, self._build, f"{type(self).__name__}-build")

    async def shutdown(self) -> None:
        async with self._lock:
            if self._engine is not None:
                await asyncio.to_thread(self._engine.stop)
                self._engine = None

    async def _running(self) -> E:
        await self.start()
        assert self._engine is not None
        return self._engine

    @property
    def num_active(self) -> int:
        return self._engine.num_active if self._engine is not None else 0

    async def wait_idle(self, timeout: float) -> bool:
        """Wait, off the event loop, until no request is active: a request whose consumer went away
        leaves at the engine's next step. ``False`` if ``timeout`` seconds passed first."""
        engine = self._engine
        return engine is None or await asyncio.to_thread(engine.wait_idle, timeout)


def deliver(out: Sequence[tuple[ThreadRequest, Delivery]]) -> None:
    """From an engine thread: put each item on its request's queue, one ``call_soon_threadsafe``
    per event loop. A request whose loop has closed is cancelled (nobody is listening)."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[ThreadRequest, Delivery]]] = {}
    for req, item in out:
        by_loop.setdefault(req.loop, []).append((req, item))
    for loop, items in by_loop.items():
        try:
            loop.call_soon_threadsafe(_put_all, items)
        except RuntimeError:
            for req, _ in items:
                req.cancelled = True


def _put_all(items: list[tuple[ThreadRequest, Delivery]]) -> None:
    for req, item in items:
        req.queue.put_nowait(item)


async def stream(engine: EngineThread[R], req: R) -> AsyncGenerator[int, None]:
    """Submit ``req`` and yield its tokens; closing this iterator cancels it (a backend's
    ``generate`` wraps it in :func:`contextlib.aclosing`, so that happens when its own consumer
    closes, not when the garbage collector gets to it)."""
    engine.submit(req)
    try:
        while True:
            item = await req.queue.get()
            if item is END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        engine.cancel(req)
