"""Reference audio from a request: an upload, a base64 string, or an http(s) URL — with caps.

URLs are fetched under the library's outbound-URL policy (:mod:`fasttts.net`, the same one job
webhooks follow): public addresses only unless ``allow_private_urls``, the connection pinned to
the checked address, every redirect hop checked, a byte cap and one overall deadline
(``fetch_deadline_s``). The decoded audio is checked for length here, before the engine sees it,
so oversized input is a 413 rather than minutes of encoding.
"""

from __future__ import annotations

import base64
import binascii

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from fasttts import net
from fasttts.audio.io import load_audio
from fasttts.config import Settings
from fasttts.engine.base import TTSEngine
from fasttts.errors import InvalidRequestError, PayloadTooLargeError, UnsupportedFeatureError

MAX_REDIRECTS = 3
_READ_CHUNK = 64 * 1024


async def read_upload(upload: UploadFile, settings: Settings, *, param: str = "reference_audio_file") -> bytes:
    """Read an uploaded file, refusing more than ``max_upload_bytes``."""
    data = bytearray()
    while chunk := await upload.read(_READ_CHUNK):
        data += chunk
        if len(data) > settings.max_upload_bytes:
            raise PayloadTooLargeError(f"{param}: larger than {settings.max_upload_bytes} bytes", param=param)
    if not data:
        raise InvalidRequestError(f"{param}: the uploaded file is empty", param=param)
    return bytes(data)


async def read_latent_upload(upload: UploadFile | None, engine: TTSEngine, settings: Settings) -> bytes | None:
    """The ``latent_file`` upload (MegaTTS3's ``.npy``): required by models whose encoder is not
    released, refused by the others (a 400 naming the field either way)."""
    given = upload is not None and bool(upload.filename)
    if not engine.capabilities.voice_latent:
        if given:
            raise UnsupportedFeatureError(f"latent_file: the {engine.model_type} model takes no reference latent", param="latent_file")
        return None
    if not given:
        raise UnsupportedFeatureError(
            f"latent_file: the {engine.model_type} model needs the reference's .npy latent (its release has no encoder)", param="latent_file"
        )
    assert upload is not None
    return await read_upload(upload, settings, param="latent_file")


async def resolve_reference(value: str, settings: Settings, *, param: str = "reference_audio") -> bytes:
    """``value`` is an http(s) URL or base64 (optionally a ``data:`` URL); returns the bytes."""
    value = value.strip()
    scheme = value.split("://", 1)[0].lower() if "://" in value[:16] else ""
    if scheme in ("http", "https"):
        return await fetch_url(value, settings, param=param)
    if scheme:
        raise InvalidRequestError(f"{param}: only http(s) URLs are fetched, not {scheme}://", param=param)
    if value.startswith("data:") and "," in value:
        value = value.split(",", 1)[1]
    if len(value) * 3 // 4 > settings.max_upload_bytes:
        raise PayloadTooLargeError(f"{param}: larger than {settings.max_upload_bytes} bytes", param=param)
    try:
        data = base64.b64decode(value + "=" * (-len(value) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequestError(f"{param}: neither an http(s) URL nor valid base64", param=param) from None
    if not data:
        raise InvalidRequestError(f"{param}: is empty", param=param)
    return data


async def fetch_url(url: str, settings: Settings, *, param: str = "reference_audio") -> bytes:
    """GET ``url`` under the outbound-URL policy of :mod:`fasttts.net`, within ``fetch_deadline_s``."""
    reply = await net.request(
        "GET",
        url,
        allow_private=settings.allow_private_urls,
        param=param,
        deadline_s=settings.fetch_deadline_s,
        max_bytes=settings.max_upload_bytes,
        max_redirects=MAX_REDIRECTS,
    )
    if reply.status != 200:
        raise InvalidRequestError(f"{param}: fetching the URL gave HTTP {reply.status}", param=param)
    return reply.body


async def check_audio(data: bytes, settings: Settings, sample_rate: int, *, param: str = "reference_audio") -> None:
    """Decode once (in a thread) to enforce the duration cap and reject non-audio early."""
    try:
        await run_in_threadpool(load_audio, data, sample_rate, max_seconds=settings.max_reference_seconds, max_bytes=settings.max_upload_bytes)
    except InvalidRequestError as exc:
        raise type(exc)(f"{param}: {exc.message}", param=param) from None
