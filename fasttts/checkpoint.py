"""Strict checkpoint checking, the one way every loader (LLM, BiCodec, …) compares a checkpoint
with the model its config describes: every problem is named at once, and nothing partial runs.
Also :func:`read_safetensors_into`, which fills a model's tensors from a safetensors file without
ever holding the checkpoint in memory beside them, :func:`read_safetensors`, which reads one
whole the same way, and :func:`held_bytes`, what the loaded weights take."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import io
import json
import struct
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import torch
from torch import nn

from fasttts.errors import ModelLoadError

Shape = Sequence[int]


def check_tensors(expected: Mapping[str, Shape], found: Mapping[str, Shape], *, where: str, ignore: Callable[[str], bool] = lambda name: False) -> None:
    """Raise :class:`ModelLoadError` naming every missing, unexpected (unless ``ignore``d) or wrongly
    shaped tensor of ``found`` (checkpoint name → shape) against ``expected`` (model name → shape)."""
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(n for n in set(found) - set(expected) if not ignore(n))
    wrong = sorted(f"{n} (checkpoint {list(found[n])}, model {list(expected[n])})" for n in set(expected) & set(found) if tuple(found[n]) != tuple(expected[n]))
    problems = [
        f"{label}: {', '.join(names)}" for label, names in (("missing tensors", missing), ("unexpected tensors", unexpected), ("wrong shapes", wrong)) if names
    ]
    if problems:
        raise ModelLoadError(f"{where} does not match its config; " + "; ".join(problems))


_SAFETENSORS_DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}


STAGE_BYTES = 32 << 20  # checkpoint bytes staged at a time for a dtype change


def _header(f: BinaryIO) -> tuple[dict[str, Any], int]:
    """A safetensors file's header (tensor name -> dtype, shape, offsets) and where its data starts."""
    (size,) = struct.unpack("<Q", f.read(8))
    header = json.loads(f.read(size))
    header.pop("__metadata__", None)
    return header, 8 + size


def read_safetensors(path: str | Path) -> dict[str, torch.Tensor]:
    """Every tensor of a safetensors file, each in a CPU tensor of its own, read with plain file
    reads (safetensors' ``load_file`` copies out of a memory map whose pages stay resident until
    it returns: the checkpoint held twice at the peak; see :func:`read_safetensors_into`)."""
    with open(path, "rb") as f:
        header, _ = _header(f)
    unknown = sorted({meta["dtype"] for meta in header.values()} - set(_SAFETENSORS_DTYPES))
    if unknown:
        raise ModelLoadError(f"{path}: unsupported tensor dtypes {', '.join(unknown)}")
    targets = {name: torch.empty(meta["shape"], dtype=_SAFETENSORS_DTYPES[meta["dtype"]]) for name, meta in header.items()}
    read_safetensors_into(path, targets)
    return targets


def read_safetensors_into(path: str | Path, targets: Mapping[str, torch.Tensor]) -> None:
    """Fill each ``targets[name]`` (already shaped like the checkpoint's tensor) from the
    safetensors file at ``path`` with plain file reads.

    Why not a memory map: every page a map touches counts in the process's resident memory until
    the map closes, so reading a whole file through one (``safe_open``/``get_tensor``) keeps the
    checkpoint resident next to the weights it was copied into (a bfloat16 Orpheus converted to
    float32 peaked at 19 GB for 12.9 GB of weights). Here a tensor stored in the target's dtype is
    read straight into it; otherwise it is staged on the CPU :data:`STAGE_BYTES` at a time and
    converted, so no tensor exists twice either (a whole-tensor stage of Orpheus's embedding was
    0.96 GB in bfloat16 beside its float32 parameter)."""
    with open(path, "rb", buffering=0) as f:
        header, base = _header(f)
        for name, dest in targets.items():
            meta = header[name]
            dtype = _SAFETENSORS_DTYPES[meta["dtype"]]
            start, end = meta["data_offsets"]
            itemsize = torch.empty(0, dtype=dtype).element_size()
            if end - start != dest.numel() * itemsize:
                raise ModelLoadError(f"{path}: tensor {name} holds {end - start} bytes, its shape needs {dest.numel() * itemsize}")
            f.seek(base + start)
            if dest.dtype == dtype and dest.device.type == "cpu" and dest.is_contiguous():
                _read_exact(f, dest.reshape(-1), path, name)
                continue
            with torch.no_grad():
                if not dest.is_contiguous():  # no loader asks this; staged whole
                    buf = torch.empty(meta["shape"], dtype=dtype)
                    _read_exact(f, buf.reshape(-1), path, name)
                    dest.copy_(buf)
                    continue
                flat, step = dest.view(-1), max(1, STAGE_BYTES // itemsize)
                buf = torch.empty(min(step, flat.numel()), dtype=dtype)
                for i in range(0, flat.numel(), step):
                    part = buf[: min(step, flat.numel() - i)]
                    _read_exact(f, part, path, name)
                    flat[i : i + len(part)].copy_(part)


def _read_exact(f: io.RawIOBase, flat: torch.Tensor, path: str | Path, name: str) -> None:
    """Fill the contiguous 1-D CPU tensor ``flat`` from ``f``'s next bytes."""
    view = flat.view(torch.uint8).numpy().data
    done = 0
    while done < len(view):
        got = f.readinto(view[done:])
        if not got:
            raise ModelLoadError(f"{path} ends inside tensor {name}")
        done += got


def held_bytes(modules: Iterable[nn.Module]) -> int:
    """Bytes of every distinct CPU tensor the ``modules`` hold: parameters, buffers and tensors
    kept as plain attributes, alone or in a tuple or list (the torch backend's packed linear weights),
    each storage counted once, plus a module's ``opaque_bytes`` (packed weights that are no tensor). What "the weights in memory" means when a loader's peak is
    compared with them: the layouts actually kept, not the checkpoint's bytes."""
    seen: dict[int, int] = {}
    opaque = 0
    for module in modules:
        opaque += getattr(module, "opaque_bytes", 0)  # storage that is no tensor (FBGEMM's packed weights)
        held: list[object] = [*module._parameters.values(), *module._buffers.values()]
        for value in vars(module).values():
            held.extend(value if isinstance(value, (tuple, list)) else (value,))
        for t in held:
            if not isinstance(t, torch.Tensor) or t.device.type != "cpu" or t.is_meta:
                continue
            try:
                storage = t.untyped_storage()
                seen[storage.data_ptr()] = storage.nbytes()
            except (RuntimeError, NotImplementedError):  # opaque (e.g. mkldnn) tensors
                seen[id(t)] = t.numel() * t.element_size()
    return sum(seen.values()) + opaque


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None  # glibc only (not musl, not macOS)
    except (OSError, AttributeError):
        return None


def release_freed_memory() -> bool:
    """Hand the pages of freed heap blocks back to the OS (glibc's ``malloc_trim(0)``); returns
    whether there was a ``malloc_trim`` to call.

    A loader's transients (a layer's staging, quantizing, packing) are freed, but once glibc has
    raised its mmap threshold past their size (it does so each time a large mmapped block is
    freed) they are served from its heap, and freed heap pages stay resident: on a full-size Spark
    LLM in int8, ~0.5 GB after loading (0.8x its 626 MB of weights). Loaders call this between layers."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
