"""Cancel work whose client has gone away.

A non-streaming request answers only when its audio is complete, so nothing is sent to the client
meanwhile and nothing notices it closing the connection: the engine kept synthesising for nobody
(issue #16: eight clients that gave up left 104 s of two-core work). :func:`unless_disconnected`
waits for the work and, at the same time, for the server's ``http.disconnect`` message; whichever
comes first wins. On a disconnect the work is cancelled, which closes the engine's generators and
removes the request from the LLM batch, and :class:`ClientDisconnected` is answered as 499 (the
status the access log and metrics record; the client never sees it).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from fastapi import Request

T = TypeVar("T")

CLIENT_CLOSED_REQUEST = 499
"""nginx's status for a request whose client closed the connection before the answer."""


class ClientDisconnected(Exception):
    """The client closed the connection before the answer was ready."""


async def _disconnect(request: Request) -> None:
    """Returns when the server reports the client gone. Called once the body has been read, so
    the only message left to receive is the disconnect (the server blocks until then)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def unless_disconnected(request: Request, work: Awaitable[T]) -> T:
    """``await work``, unless the client disconnects first: then the work is cancelled (and has
    finished cancelling) before :class:`ClientDisconnected` is raised."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_disconnect(request))
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
        if not task.done():  # the client left, or this request itself is being cancelled
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    if task.cancelled():
        raise ClientDisconnected
    return task.result()
