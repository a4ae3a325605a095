"""The checkpoint readers' contents, and what :func:`held_bytes` counts as the weights in memory."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from fasttts.checkpoint import held_bytes, read_safetensors
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
