"""Form parsing sized to our body caps, not Starlette's.

Starlette refuses any form field over 1 MiB (``max_part_size``) with a 400 that names neither the
field nor a setting, before route code runs: a base64 ``reference_audio`` of a 750 KB file, or a
job's ``request`` field holding a long text, failed so although the body was well under our caps.
Here a field may be as large as the body that carries it; ``api.middleware.BodyLimitMiddleware``
bounds the body (413 naming the setting), and the routes' own checks then name the field
(``reference_audio`` against ``max_upload_bytes``, ``text`` against ``max_input_chars``, ...).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute
from starlette._utils import AwaitableOrContextManager
from starlette.datastructures import FormData

from api.middleware import body_caps
from fasttts.config import Settings


class CappedFormRequest(Request):
    """A request whose :meth:`form` lets one field be as large as the largest body cap."""

    def form(self, *, max_files: int | float = 1000, max_fields: int | float = 1000, max_part_size: int | None = None) -> AwaitableOrContextManager[FormData]:
        if max_part_size is None:
            settings: Settings = self.app.state.settings
            max_part_size = max(body_caps(settings.max_upload_bytes, settings.max_json_bytes))
        return super().form(max_files=max_files, max_fields=max_fields, max_part_size=max_part_size)


class CappedFormRoute(APIRoute):
    """The route class of every router that takes forms: FastAPI parses ``Form``/``File``
    parameters with ``request.form()``, so its request must be a :class:`CappedFormRequest`."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def capped(request: Request) -> Response:
            return await handler(CappedFormRequest(request.scope, request.receive))

        return capped
