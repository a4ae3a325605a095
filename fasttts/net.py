"""Outbound HTTP to URLs that users hand us (reference audio, job webhooks), under one policy.

A URL in a request makes the server connect somewhere on the user's behalf, so every such
connection follows the same rules:

* http and https only;
* the host must resolve to public addresses only (not private, loopback, link-local, reserved or
  multicast) unless ``allow_private`` is set; otherwise the server could be made to probe or post
  into its own network;
* the connection goes to the very address that was checked (the Host header and the TLS server
  name keep the URL's host name), so a DNS answer that changes between the check and the
  connection (DNS rebinding) cannot lead it inside;
* redirects are followed by hand, at most a few, and every hop is checked again;
* one overall deadline covers the whole exchange (resolution, connection, redirects, headers and
  body): per-read timeouts alone let a server that trickles a byte every few seconds hold a
  request for as long as it likes;
* the answer's body is capped in bytes, on its declared length and while it streams.

Violations are :class:`~fasttts.errors.InvalidRequestError` naming the request field (``param``),
so they surface as a 4xx naming it, at submit as well as when the connection is made.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import SplitResult, urljoin, urlsplit, urlunsplit

import httpx

from fasttts.errors import InvalidRequestError, PayloadTooLargeError

__all__ = ["Reply", "UnreachableURLError", "check_url", "request"]

_Address = ipaddress.IPv4Address | ipaddress.IPv6Address
_AddrInfo = list[tuple[Any, ...]]  # what getaddrinfo answers


class UnreachableURLError(InvalidRequestError):
    """The URL is allowed, but no complete answer came: the connection failed or the overall
    deadline passed. Worth retrying later, unlike a URL the policy refuses."""


@dataclass
class Reply:
    status: int
    headers: httpx.Headers
    body: bytes = b""


@dataclass(frozen=True)
class _Target:
    """Where to connect for a URL: its checked address, with the URL's host name kept."""

    url: str
    headers: dict[str, str] = field(default_factory=dict)
    extensions: dict[str, str] = field(default_factory=dict)


def _parse(url: str, param: str) -> tuple[SplitResult, int]:
    """The URL's parts and port; anything but a well-formed http(s) URL is refused."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:  # "http://[::1", "http://host:99999"
        raise InvalidRequestError(f"{param}: not a valid URL ({exc})", param=param) from None
    if parts.scheme.lower() not in ("http", "https"):
        raise InvalidRequestError(f"{param}: only http(s) URLs are allowed, not {parts.scheme or 'no scheme'}", param=param)
    if not parts.hostname:
        raise InvalidRequestError(f"{param}: the URL has no host", param=param)
    return parts, port or (443 if parts.scheme.lower() == "https" else 80)


def _public_address(host: str, infos: _AddrInfo, param: str) -> _Address:
    """The address to connect to: every address ``host`` resolves to must be public."""
    addresses = [ipaddress.ip_address(info[4][0].split("%", 1)[0]) for info in infos]
    if not addresses:
        raise _unresolvable(host, param)
    for address in addresses:
        if not address.is_global or address.is_multicast:
            raise InvalidRequestError(f"{param}: URL host {host!r} resolves to a non-public address ({address}); refused", param=param)
    return addresses[0]


def _unresolvable(host: str, param: str) -> InvalidRequestError:
    return InvalidRequestError(f"{param}: cannot resolve host {host!r}", param=param)


def check_url(url: str, *, allow_private: bool, param: str) -> None:
    """Refuse ``url`` now if the policy would refuse it at connection time (blocking: it may
    resolve the host, so call it from a thread, as the job service's ``submit`` runs)."""
    parts, port = _parse(url, param)
    if allow_private:
        return
    try:
        infos = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise _unresolvable(parts.hostname or "", param) from None
    _public_address(parts.hostname or "", infos, param)


async def _target(url: str, allow_private: bool, param: str) -> _Target:
    parts, port = _parse(url, param)
    if allow_private:
        return _Target(url)
    host = parts.hostname or ""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise _unresolvable(host, param) from None
    address = _public_address(host, infos, param)
    literal = f"[{address}]" if address.version == 6 else str(address)
    netloc_host = host if parts.port is None else f"{host}:{parts.port}"
    pinned = urlunsplit(parts._replace(netloc=f"{literal}:{port}"))
    return _Target(pinned, {"Host": netloc_host}, {"sni_hostname": host} if parts.scheme.lower() == "https" else {})


async def _exchange(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    allow_private: bool,
    param: str,
    max_bytes: int | None,
    content: bytes | None,
    headers: dict[str, str],
    max_redirects: int,
) -> Reply:
    for _ in range(max_redirects + 1):
        target = await _target(url, allow_private, param)
        async with client.stream(method, target.url, content=content, headers=headers | target.headers, extensions=target.extensions) as response:
            if max_redirects and response.is_redirect and "location" in response.headers:
                url = urljoin(url, response.headers["location"])
                continue
            reply = Reply(response.status_code, response.headers)
            if max_bytes is None:
                return reply
            too_large = PayloadTooLargeError(f"{param}: larger than {max_bytes} bytes", param=param)
            if int(response.headers.get("content-length") or 0) > max_bytes:
                raise too_large
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > max_bytes:
                    raise too_large
            reply.body = bytes(body)
            return reply
    raise InvalidRequestError(f"{param}: too many redirects", param=param)


async def request(
    method: str,
    url: str,
    *,
    allow_private: bool,
    param: str,
    deadline_s: float,
    max_bytes: int | None,
    content: bytes | None = None,
    headers: dict[str, str] | None = None,
    max_redirects: int = 0,
) -> Reply:
    """One exchange with ``url`` under the policy, all of it within ``deadline_s``.

    ``max_bytes`` caps the answer's body (None: the body is not read, only the status matters).
    Redirects are followed (each hop checked) only when ``max_redirects`` is above 0; otherwise a
    3xx is returned like any other status."""
    try:
        async with asyncio.timeout(deadline_s), httpx.AsyncClient(timeout=deadline_s, follow_redirects=False) as client:
            return await _exchange(
                client,
                method,
                url,
                allow_private=allow_private,
                param=param,
                max_bytes=max_bytes,
                content=content,
                headers=headers or {},
                max_redirects=max_redirects,
            )
    except TimeoutError:
        raise UnreachableURLError(f"{param}: no complete answer from the URL within {deadline_s:g} s", param=param) from None
    except httpx.HTTPError as exc:
        raise UnreachableURLError(f"{param}: could not fetch the URL ({type(exc).__name__})", param=param) from None
