"""What the size-limit tests share: crafted EPUB zip bombs, peak-memory and spooled-file probes of
a process (Linux /proc), and small local HTTP servers that misbehave on purpose."""

from __future__ import annotations

import http.server
import io
import os
import struct
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

MiB = 1024 * 1024

_CONTAINER = b"""<?xml version="1.0"?>
<container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container">
  <rootfiles><rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/></rootfiles>
</container>"""
_OPF = b"""<?xml version="1.0" encoding="utf-8"?>
<package xmlns="http://www.idpf.org/2007/opf" version="3.0" unique-identifier="id">
  <metadata xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:identifier id="id">bomb</dc:identifier>
    <dc:title>Bomb</dc:title><dc:language>en</dc:language></metadata>
  <manifest><item id="c1" href="chapter.xhtml" media-type="application/xhtml+xml"/></manifest>
  <spine><itemref idref="c1"/></spine>
</package>"""
CHAPTER = "OEBPS/chapter.xhtml"


def epub_bomb(unpacked: int, *, declared: int | None = None) -> bytes:
    """A well-formed EPUB whose one chapter is ``unpacked`` bytes of "All work and no play. "
    (it deflates about a thousandfold), written in chunks so the test never holds it unpacked.

    With ``declared``, the zip's headers are patched to claim the chapter unpacks to that many
    bytes: a member that lies about its size."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(zipfile.ZipInfo("mimetype"), "application/epub+zip", compress_type=zipfile.ZIP_STORED)
        archive.writestr("META-INF/container.xml", _CONTAINER)
        archive.writestr("OEBPS/content.opf", _OPF)
        head, tail = b"<html><body><p>", b"</p></body></html>"
        filler = b"All work and no play. " * (MiB // 22)
        with archive.open(CHAPTER, "w") as member:
            member.write(head)
            left = unpacked - len(head) - len(tail)
            while left > 0:
                member.write(filler[:left])
                left -= len(filler)
            member.write(tail)
    data = bytearray(out.getvalue())
    if declared is not None:
        _patch_size(data, CHAPTER.encode(), declared)
    return bytes(data)


def _patch_size(data: bytearray, name: bytes, size: int) -> None:
    """Overwrite ``name``'s uncompressed size in its local header and its central directory entry."""
    for signature, size_at, name_at in ((b"PK\x03\x04", 22, 30), (b"PK\x01\x02", 24, 46)):
        header = data.find(signature)
        while header != -1:
            if data[header + name_at : header + name_at + len(name)] == name:
                struct.pack_into("<I", data, header + size_at, size)
                break
            header = data.find(signature, header + 4)
        else:
            raise AssertionError(f"{name!r} not found")


def _status(pid: int | str) -> dict[str, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if value.strip().endswith("kB"):
            fields[key] = int(value.split()[0]) * 1024
    return fields


@contextmanager
def peak_memory_growth(pid: int | str = "self") -> Iterator[Callable[[], int]]:
    """Yields a function giving how far the process's peak resident memory rose above its resident
    memory at the start: the kernel's high-water mark (VmHWM) is reset first (clear_refs 5)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")
    start = _status(pid)["VmRSS"]
    yield lambda: _status(pid)["VmHWM"] - start


def open_file_bytes(pid: int, under: Path) -> int:
    """Bytes in the files ``pid`` has open under ``under``, deleted ones included (spooled uploads
    are unlinked temporary files, visible only through the process's descriptors)."""
    total = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            if os.readlink(fd).startswith(str(under)):
                total += fd.stat().st_size
        except OSError:  # closed meanwhile
            continue
    return total


class TrickleServer:
    """A local HTTP server that answers every request one byte at a time, ``interval_s`` apart,
    for ``total_s`` seconds in all (its headers too): what a deadline must cut off.
    ``served`` counts the answers it finished, ``cut`` the ones the client abandoned."""

    def __init__(self, *, interval_s: float = 0.25, total_s: float = 30.0, status: int = 200) -> None:
        owner = self
        self.served = 0
        self.cut = threading.Event()
        answer = f"HTTP/1.1 {status} OK\r\nContent-Length: {int(total_s / interval_s)}\r\n\r\n".encode()
        body = b"x" * int(total_s / interval_s)

        class Handler(http.server.BaseHTTPRequestHandler):
            def _trickle(self) -> None:
                if self.headers.get("Content-Length"):
                    self.rfile.read(int(self.headers["Content-Length"]))
                try:
                    for byte in answer + body:
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                        time.sleep(interval_s)  # the server's behaviour under test, not synchronisation
                    owner.served += 1
                except OSError:
                    owner.cut.set()

            do_GET = do_POST = _trickle

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/slow"

    def __enter__(self) -> TrickleServer:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
