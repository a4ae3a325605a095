"""FastTTS's x86 decode-attention kernel against eager attention's arithmetic, on cache-shaped views."""

from __future__ import annotations

import pytest
import torch

from fasttts.backends.torch_llm import x86_kernels

H, HKV, D, CAPACITY = 14, 2, 64, 48  # Qwen2.5-0.5B's heads (7 query heads per key/value head)


def _build(isa: str):
    kernels = x86_kernels.ops(isa)
    if kernels is None:
        pytest.skip(f"no {isa} build here: the CPU lacks it or no C++ compiler")
    return kernels


def _cache(dtype: torch.dtype, slots: int = 4, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A query per slot and the slots' keys and values as the KV cache holds them: [slots, Hkv,
    capacity, D] views a capacity apart, not contiguous tensors."""
    gen = torch.Generator().manual_seed(seed)
    kv = torch.randn(2, slots, HKV, CAPACITY, D, generator=gen).to(dtype)
    q = torch.randn(slots, H + 2 * HKV, D, generator=gen).to(dtype)[:, :H]  # rows of a fused q/k/v output
    return q, kv[0], kv[1]


def _eager(q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, lengths: list[int], scale: float) -> torch.Tensor:
    """Eager attention on a CPU: float32 scores times the scale, masked, float32 softmax, float32 sum."""
    q, keys, values = q.float(), keys.float(), values.float()
    b, rep = q.shape[0], H // HKV
    scores = (q.view(b, HKV, rep, D) @ keys.transpose(-1, -2)) * scale  # [B, Hkv, rep, L]
    blocked = torch.arange(keys.shape[2])[None, :] >= torch.tensor(lengths)[:, None]
    scores = scores.masked_fill(blocked[:, None, None], torch.finfo(torch.float32).min)
    return (torch.softmax(scores, dim=-1) @ values).reshape(b, H * D)


@pytest.mark.parametrize("isa", ["avx512", "avx2"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_decode_attention_computes_what_eager_attention_computes(isa, dtype):
    kernels = _build(isa)
    q, keys, values = _cache(dtype)
    lengths = [1, 9, 30, 30]
    got = kernels.decode_attention(q, keys[:, :, :30], values[:, :, :30], torch.tensor(lengths), D**-0.5)
    want = _eager(q, keys[:, :, :30], values[:, :, :30], lengths, D**-0.5)
    assert got.shape == (4, H * D) and got.dtype == dtype
    tol = 1e-5 if dtype == torch.float32 else 2**-8  # float32: summation order; bfloat16: one rounding of the output
    assert torch.allclose(got.float(), want, atol=tol, rtol=tol)
    assert torch.equal(got[0].float().view(H, D), values[0, :, 0].float().repeat_interleave(H // HKV, dim=0).to(dtype).float())  # one key: its value


@pytest.mark.parametrize("isa", ["avx512", "avx2"])
def test_a_rows_attention_does_not_depend_on_the_batch_beside_it(isa):
    kernels = _build(isa)
    q, keys, values = _cache(torch.float32, seed=1)
    lengths = torch.tensor([3, 40, 17, 40])
    together = kernels.decode_attention(q, keys[:, :, :40], values[:, :, :40], lengths, 0.125)
    for b in range(4):
        n = int(lengths[b])
        alone = kernels.decode_attention(q[b : b + 1], keys[b : b + 1, :, :n], values[b : b + 1, :, :n], lengths[b : b + 1], 0.125)
        assert torch.equal(alone, together[b : b + 1]), b


def test_decode_attention_refuses_lengths_past_the_keys_and_mismatched_heads():
    kernels = _build(x86_kernels.ISA or "avx2")
    q, keys, values = _cache(torch.float32)
    with pytest.raises(RuntimeError, match="lengths must lie in 1..L"):
        kernels.decode_attention(q, keys[:, :, :8], values[:, :, :8], torch.tensor([1, 2, 9, 3]), 0.125)
    with pytest.raises(RuntimeError, match="lengths must lie in 1..L"):
        kernels.decode_attention(q, keys[:, :, :8], values[:, :, :8], torch.tensor([0, 2, 3, 3]), 0.125)
    with pytest.raises(RuntimeError, match="head grouping"):
        kernels.decode_attention(q[:, :13], keys[:, :, :8], values[:, :, :8], torch.tensor([1, 2, 3, 3]), 0.125)
