"""The error tree every layer speaks.

The engine raises these; ``api/errors.py`` maps each class to one HTTP status (and, on ``/v1``,
OpenAI's error object), so the HTTP layer never inspects messages. ``param`` names the offending
request field so ``/v1`` can fill OpenAI's ``param``.
"""

from __future__ import annotations


class FastTTSError(Exception):
    """Base class of every error FastTTS raises on purpose."""

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


class InvalidRequestError(FastTTSError):
    """The request itself is wrong (bad value, unknown option): HTTP 400/422."""


class UnsupportedFeatureError(InvalidRequestError):
    """The request is valid, but the loaded model cannot do it (e.g. cloning with Orpheus): 400."""


class AudioDecodeError(InvalidRequestError):
    """Reference audio could not be read as audio: HTTP 415/422."""


class PayloadTooLargeError(InvalidRequestError):
    """An input exceeds a configured size or duration cap: HTTP 413."""


class NotFoundError(FastTTSError):
    """A named thing (voice, job) does not exist: HTTP 404."""


class ConflictError(FastTTSError):
    """A name is taken (e.g. a voice another request or API replica created first): HTTP 409."""


class ModelLoadError(FastTTSError):
    """A model directory is missing files, tensors or has wrong shapes. Raised at start-up."""


class GenerationError(FastTTSError):
    """The model produced no usable audio even after a retry with a new seed: HTTP 500-class,
    but reported with a clear message rather than a crash."""


class BackendError(FastTTSError):
    """The LLM backend failed (native error translated at the backend boundary)."""


class CapacityError(FastTTSError):
    """Too many requests in flight: HTTP 429 with Retry-After."""


class NotReadyError(FastTTSError):
    """The engine or a service it needs is not ready: HTTP 503."""


class MissingExtraError(FastTTSError):
    """An optional backend was chosen whose extra is not installed."""

    def __init__(self, package: str, extra: str) -> None:
        super().__init__(f"the '{extra}' backend needs the package '{package}'; install it with: pip install -e '.[{extra}]'")
        self.extra = extra
