"""The checkpoint readers' contents, and what :func:`held_bytes` counts as the weights in memory."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from fasttts.checkpoint import held_bytes, read_safetensors, release_freed_memory
from fasttts.errors import ModelLoadError


def test_read_safetensors_equals_safetensors_own_reader(tmp_path: Path) -> None:
    gen = torch.Generator().manual_seed(0)
    tensors = {
        "a.weight": torch.randn(5, 7, generator=gen),
        "b.weight": torch.randn(3, 1, 4, generator=gen).to(torch.bfloat16),
        "c.ids": torch.arange(11, dtype=torch.int64),
        "d.empty": torch.zeros(0, 3, dtype=torch.float16),
    }
    path = tmp_path / "m.safetensors"
    save_file(tensors, str(path), metadata={"format": "pt"})  # a __metadata__ entry in the header
    got, expected = read_safetensors(path), load_file(str(path))
    assert got.keys() == expected.keys() == tensors.keys()
    for name, t in expected.items():
        assert got[name].dtype == t.dtype and torch.equal(got[name], t), name


def test_read_safetensors_names_an_unsupported_dtype(tmp_path: Path) -> None:
    path = tmp_path / "m.safetensors"
    save_file({"x": torch.zeros(2, dtype=torch.complex64)}, str(path))
    with pytest.raises(ModelLoadError, match="unsupported tensor dtypes C64"):
        read_safetensors(path)


class _Packed(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(4, 8))  # 128 bytes
        self.register_buffer("same", self.weight.data[:2])  # a view of the weight: not counted again
        self.stored = (torch.zeros(16, dtype=torch.int8), torch.zeros(4, dtype=torch.bfloat16))  # 16 + 8 bytes
        self.plan = "not a tensor"


def test_held_bytes_counts_each_storage_once_including_tuples() -> None:
    module = _Packed()
    assert held_bytes([module]) == 128 + 16 + 8
    assert held_bytes([module, module]) == 128 + 16 + 8
    assert held_bytes(nn.Sequential(module, nn.Linear(2, 3)).modules()) == 128 + 16 + 8 + (6 + 3) * 4


def test_a_dtype_change_is_read_in_blocks_into_row_slices(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from fasttts import checkpoint

    monkeypatch.setattr(checkpoint, "STAGE_BYTES", 40)  # 20 bfloat16 values a block: 7 blocks for 130, the last partial
    gen = torch.Generator().manual_seed(1)
    tensors = {"q": torch.randn(10, 13, generator=gen).to(torch.bfloat16), "k": torch.randn(3, 13, generator=gen).to(torch.bfloat16)}
    path = tmp_path / "m.safetensors"
    save_file(tensors, str(path))
    fused = torch.full((14, 13), -1.0)  # q's and k's rows stacked, one row left untouched
    checkpoint.read_safetensors_into(path, {"q": fused[:10], "k": fused[10:13]})
    assert torch.equal(fused[:10], tensors["q"].float()) and torch.equal(fused[10:13], tensors["k"].float())
    assert bool((fused[13] == -1).all())
    with pytest.raises(ModelLoadError, match="tensor q holds 260 bytes, its shape needs 240"):
        checkpoint.read_safetensors_into(path, {"q": torch.empty(2, 60)})


FRAGMENTED_HEAP = r"""
import json
from pathlib import Path
import torch
from fasttts.checkpoint import release_freed_memory
def rss():
    return int(next(l for l in Path("/proc/self/status").read_text().splitlines() if l.startswith("VmRSS:")).split()[1]) * 1024
big = torch.ones(16 << 20, dtype=torch.uint8)
del big  # freeing a 16 MB mmapped block raises glibc's mmap threshold past the blocks below
blocks, pins = [], []
for _ in range(64):  # 256 MB, now served from the heap, each block followed by a small live one
    blocks.append(torch.ones(4 << 20, dtype=torch.uint8))
    pins.append(torch.ones(256 << 10, dtype=torch.uint8))
before = rss()
del blocks  # holes between the pins: free, but nothing lets the heap shrink
freed = rss()
trimmed = release_freed_memory()
print(json.dumps({"before": before, "freed": freed, "after": rss(), "trimmed": trimmed}))
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
def test_release_freed_memory_returns_freed_heap_pages() -> None:
    """Freed blocks that glibc served from its heap (its mmap threshold raised by an earlier free)
    and that live blocks keep from the heap's top stay resident until :func:`release_freed_memory`
    (a fresh interpreter: the heap's state is this probe's alone)."""
    out = subprocess.run([sys.executable, "-c", FRAGMENTED_HEAP], capture_output=True, text=True, check=True)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    blocks = 64 * (4 << 20)
    assert r["trimmed"] is True
    assert r["before"] - r["freed"] < 0.2 * blocks  # freeing alone gave (almost) nothing back
    assert r["freed"] - r["after"] > 0.8 * blocks  # the call did


def test_release_freed_memory_is_harmless_to_live_tensors() -> None:
    t = torch.arange(1 << 20, dtype=torch.float32)
    release_freed_memory()
    assert torch.equal(t, torch.arange(1 << 20, dtype=torch.float32))
