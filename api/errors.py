"""One HTTP status per ``fasttts.errors`` class, and OpenAI's error object on ``/v1``.

The library raises typed errors carrying the offending ``param``; this module is the only place
that turns them into responses, so routes never build error bodies by hand. Native routes answer
``{"detail": message, "param": ...}`` (FastAPI's own shape, kept for its validation errors);
``/v1`` routes answer ``{"error": {"message", "type", "param", "code"}}`` so OpenAI clients raise
their usual typed exceptions.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.disconnect import CLIENT_CLOSED_REQUEST, ClientDisconnected
from api.outage import OutageBackoff
from fasttts import errors as E

logger = logging.getLogger("fasttts.api")

RETRY_AFTER_S = 1
"""Seconds a client told 429 should wait; requests are short, so retrying soon is right (a 503's
``Retry-After`` comes from :class:`api.outage.OutageBackoff` instead)."""


class AuthenticationError(Exception):
    """Missing or wrong API key (HTTP 401). Lives here: authentication is an HTTP concern."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BodyTooLargeError(StarletteHTTPException):
    """A request body is over its cap (``api.middleware.BodyLimitMiddleware``). Raised while the
    body streams in, as an ``HTTPException`` so that FastAPI's own body parsing lets it through."""

    def __init__(self, limit: int, setting: str) -> None:
        super().__init__(413, f"request body larger than {limit} bytes ({setting})")


# class -> (status, OpenAI error type, OpenAI code); the most specific class in the MRO wins.
_STATUS: dict[type[Exception], tuple[int, str, str | None]] = {
    E.InvalidRequestError: (422, "invalid_request_error", "invalid_value"),
    E.UnsupportedFeatureError: (400, "invalid_request_error", "unsupported_feature"),
    E.AudioDecodeError: (415, "invalid_request_error", "unsupported_audio"),
    E.PayloadTooLargeError: (413, "invalid_request_error", "payload_too_large"),
    E.NotFoundError: (404, "invalid_request_error", "not_found"),
    E.ConflictError: (409, "invalid_request_error", "conflict"),
    E.CapacityError: (429, "rate_limit_error", "over_capacity"),
    E.NotReadyError: (503, "server_error", "not_ready"),
    E.GenerationError: (500, "server_error", "generation_failed"),
    E.BackendError: (500, "server_error", "backend_error"),
    E.ModelLoadError: (503, "server_error", "model_load_error"),
    E.FastTTSError: (500, "server_error", None),
}


def status_of(exc: Exception) -> tuple[int, str, str | None]:
    for cls in type(exc).__mro__:
        if cls in _STATUS:
            return _STATUS[cls]
    return 500, "server_error", None


def is_openai_path(request: Request) -> bool:
    return request.url.path.startswith("/v1/") or request.url.path == "/v1"


def openai_error_body(message: str, type_: str, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def error_response(
    request: Request, status: int, message: str, *, type_: str, param: str | None, code: str | None, headers: dict[str, str] | None = None
) -> JSONResponse:
    if is_openai_path(request):
        body = openai_error_body(message, type_, param, code)
    else:
        body = {"detail": message, "param": param, "code": code}
    return JSONResponse(body, status_code=status, headers=headers)


async def _fasttts_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, E.FastTTSError)
    status, type_, code = status_of(exc)
    if status >= 500:
        logger.error("request failed: %s", exc.message, exc_info=exc if status == 500 else None)
    headers = None
    if status == 429:
        headers = {"Retry-After": str(RETRY_AFTER_S)}
    elif status == 503:  # a lost dependency or a model not loaded: back off while it lasts
        headers = {"Retry-After": str(request.app.state.backoff.failed())}
    if isinstance(exc, E.NotFoundError) and exc.param == "model":
        code = "model_not_found"
    return error_response(request, status, exc.message, type_=type_, param=exc.param, code=code, headers=headers)


async def _auth_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AuthenticationError)
    return error_response(request, 401, exc.message, type_="invalid_request_error", param=None, code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"})


def _loc_param(loc: tuple[Any, ...]) -> str | None:
    """FastAPI locations look like ("body", "speed"); OpenAI's ``param`` is the field path."""
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header", "form")]
    return ".".join(parts) or None


def _json_safe(error: dict[str, Any]) -> dict[str, Any]:
    """One validation error as strict JSON. Its ``input`` and ``ctx`` echo what the client sent,
    which Python's JSON parser may have turned into values JSON cannot carry (NaN, Infinity, a lone
    surrogate): those are replaced by their ``ascii()`` spelling rather than failing the answer."""
    encoded = jsonable_encoder(error)
    for key in ("input", "ctx"):
        if key in encoded:
            try:
                json.dumps(encoded[key], allow_nan=False, ensure_ascii=False).encode("utf-8")  # as JSONResponse renders
            except (ValueError, UnicodeEncodeError):
                encoded[key] = ascii(error[key])
    return encoded


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    if not is_openai_path(request):
        return JSONResponse({"detail": [_json_safe(e) for e in errors]}, status_code=422)
    first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
    param = _loc_param(tuple(first.get("loc", ())))
    message = "; ".join(f"{_loc_param(tuple(e.get('loc', ()))) or 'body'}: {e.get('msg')}" for e in errors)
    return JSONResponse(openai_error_body(message, "invalid_request_error", param, "invalid_value"), status_code=422)


def body_too_large_response(request: Request, exc: BodyTooLargeError) -> JSONResponse:
    return error_response(request, 413, str(exc.detail), type_="invalid_request_error", param="body", code="payload_too_large")


async def _body_too_large(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, BodyTooLargeError)
    return body_too_large_response(request, exc)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if not is_openai_path(request):
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)
    type_ = "invalid_request_error" if exc.status_code < 500 else "server_error"
    return JSONResponse(openai_error_body(str(exc.detail), type_), status_code=exc.status_code, headers=exc.headers)


async def _client_disconnected(request: Request, exc: Exception) -> Response:
    """Nobody reads this answer; its status is what the access log and the metrics record."""
    logger.info("client disconnected before the answer was ready; its work was cancelled")
    return Response(status_code=CLIENT_CLOSED_REQUEST)


def install_error_handlers(app: FastAPI) -> None:
    """The handlers, and ``app.state.backoff``, whose ``Retry-After`` every 503 carries."""
    app.state.backoff = OutageBackoff()
    app.add_exception_handler(E.FastTTSError, _fasttts_error)
    app.add_exception_handler(AuthenticationError, _auth_error)
    app.add_exception_handler(ClientDisconnected, _client_disconnected)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(BodyTooLargeError, _body_too_large)
