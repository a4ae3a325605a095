"""Reference audio from a request: an upload, a base64 string, or an http(s) URL — with caps.

URLs are fetched asynchronously with httpx, with a timeout and a byte cap, following at most a
few redirects by hand so that every hop is checked; hosts that resolve to private, loopback,
link-local or reserved addresses are refused unless ``allow_private_urls`` is set (otherwise the
server could be used to probe its own network). The connection goes to the very address that was
checked (the Host header and TLS server name keep the URL's host name), so a DNS answer that
changes between the check and the connection cannot lead it inside. The decoded audio is checked
for length here, before the engine sees it, so oversized input is a 413 rather than minutes of
encoding.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import ipaddress
import socket
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx
from fastapi import UploadFile
from starlette.concurrency import run_in_threadpool

from fasttts.audio.io import load_audio
from fasttts.config import Settings
from fasttts.engine.base import TTSEngine
from fasttts.errors import InvalidRequestError, PayloadTooLargeError, UnsupportedFeatureError

FETCH_TIMEOUT_S = 10.0
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
        raise UnsupportedFeatureError(f"latent_file: the {engine.model_type} model needs the reference's .npy latent (its release has no encoder)", param="latent_file")
    assert upload is not None
    return await read_upload(upload, settings, param="latent_file")


async def resolve_reference(value: str, settings: Settings, *, param: str = "reference_audio") -> bytes:
    """``value`` is an http(s) URL or base64 (optionally a ``data:`` URL); returns the bytes."""
    value = value.strip()
    scheme = urlsplit(value).scheme.lower() if "://" in value[:16] else ""
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


async def _public_address(host: str, port: int, param: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """The address to connect to for ``host``: every address it resolves to must be public."""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise InvalidRequestError(f"{param}: cannot resolve host {host!r}", param=param) from None
    addresses = [ipaddress.ip_address(info[4][0].split("%", 1)[0]) for info in infos]
    for address in addresses:
        if not address.is_global or address.is_multicast:
            raise InvalidRequestError(f"{param}: URL host {host!r} resolves to a non-public address ({address}); refused", param=param)
    return addresses[0]


async def _pinned(url: str, settings: Settings, param: str) -> tuple[str, dict[str, str], dict[str, str]]:
    """(URL, headers, httpx extensions) that fetch ``url`` from its checked public address."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidRequestError(f"{param}: only http(s) URLs are fetched", param=param)
    if settings.allow_private_urls:
        return url, {}, {}
    port = parts.port or (443 if parts.scheme == "https" else 80)
    address = await _public_address(parts.hostname, port, param)
    literal = f"[{address}]" if address.version == 6 else str(address)
    host = parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}"
    target = urlunsplit(parts._replace(netloc=f"{literal}:{port}"))
    return target, {"Host": host}, ({"sni_hostname": parts.hostname} if parts.scheme == "https" else {})


async def fetch_url(url: str, settings: Settings, *, param: str = "reference_audio") -> bytes:
    async with httpx.AsyncClient(timeout=FETCH_TIMEOUT_S, follow_redirects=False) as client:
        for _ in range(MAX_REDIRECTS + 1):
            target, headers, extensions = await _pinned(url, settings, param)
            try:
                async with client.stream("GET", target, headers=headers, extensions=extensions) as response:
                    if response.is_redirect and "location" in response.headers:
                        url = urljoin(url, response.headers["location"])
                        continue
                    if response.status_code != 200:
                        raise InvalidRequestError(f"{param}: fetching the URL gave HTTP {response.status_code}", param=param)
                    declared = int(response.headers.get("content-length") or 0)
                    if declared > settings.max_upload_bytes:
                        raise PayloadTooLargeError(f"{param}: larger than {settings.max_upload_bytes} bytes", param=param)
                    data = bytearray()
                    async for chunk in response.aiter_bytes():
                        data += chunk
                        if len(data) > settings.max_upload_bytes:
                            raise PayloadTooLargeError(f"{param}: larger than {settings.max_upload_bytes} bytes", param=param)
                    return bytes(data)
            except httpx.HTTPError as exc:
                raise InvalidRequestError(f"{param}: could not fetch the URL ({type(exc).__name__})", param=param) from None
    raise InvalidRequestError(f"{param}: too many redirects", param=param)


async def check_audio(data: bytes, settings: Settings, sample_rate: int, *, param: str = "reference_audio") -> None:
    """Decode once (in a thread) to enforce the duration cap and reject non-audio early."""
    try:
        await run_in_threadpool(load_audio, data, sample_rate, max_seconds=settings.max_reference_seconds, max_bytes=settings.max_upload_bytes)
    except InvalidRequestError as exc:
        raise type(exc)(f"{param}: {exc.message}", param=param) from None
