"""A slot-based KV cache: one slot per running sequence, shared by all layers.

Keys and values live in one preallocated tensor ``[layers, 2, slots, kv_heads, capacity, head_dim]``
(index 0 keys, 1 values), so a layer stores a token's key and value with one write: the model's
fused q/k/v projection leaves them adjacent.
A sequence takes a free slot when its prefill starts and gives it back when it finishes or is
cancelled. Both the number of slots (up to ``max_slots``) and the capacity (up to
``max_capacity``) grow by doubling on demand, so a lightly loaded server holds little memory;
when every slot is free the cache shrinks back to its initial size.
"""

from __future__ import annotations

import torch


class KVCache:
    def __init__(
        self,
        *,
        num_layers: int,
        num_kv_heads: int,
        head_dim: int,
        max_slots: int,
        max_capacity: int,
        dtype: torch.dtype,
        device: torch.device,
        initial_slots: int = 4,
        initial_capacity: int = 256,
    ) -> None:
        self.num_layers, self.num_kv_heads, self.head_dim = num_layers, num_kv_heads, head_dim
        self.max_slots, self.max_capacity = max_slots, max_capacity
        self.dtype, self.device = dtype, device
        self._initial = (min(initial_slots, max_slots), min(initial_capacity, max_capacity))
        self._free: list[int] = []
        self._used: set[int] = set()
        self._allocate(*self._initial)

    # ------------------------------------------------------------------ storage
    def _allocate(self, slots: int, capacity: int) -> None:
        shape = (self.num_layers, 2, slots, self.num_kv_heads, capacity, self.head_dim)
        self.kv = torch.zeros(shape, dtype=self.dtype, device=self.device)
        self._free = sorted(set(range(slots)) - self._used, reverse=True)

    def _resize(self, slots: int, capacity: int) -> None:
        old = self.kv
        keep_s, keep_c = min(slots, old.shape[2]), min(capacity, old.shape[4])
        self._allocate(slots, capacity)
        self.kv[:, :, :keep_s, :, :keep_c] = old[:, :, :keep_s, :, :keep_c]

    @property
    def num_slots(self) -> int:
        return self.kv.shape[2]

    @property
    def capacity(self) -> int:
        return self.kv.shape[4]

    @property
    def num_free(self) -> int:
        """Slots that can still be handed out (counting those growth would add)."""
        return self.max_slots - len(self._used)

    @property
    def num_used(self) -> int:
        return len(self._used)

    def nbytes(self) -> int:
        return self.kv.numel() * self.kv.element_size()

    # ------------------------------------------------------------------ slots
    def acquire(self) -> int:
        """A free slot id; grows the slot dimension when all allocated slots are taken."""
        if not self._free:
            if self.num_slots >= self.max_slots:
                raise RuntimeError("KV cache has no free slot")
            self._resize(min(self.max_slots, self.num_slots * 2), self.capacity)
        slot = self._free.pop()
        self._used.add(slot)
        return slot

    def release(self, slot: int) -> None:
        self._used.discard(slot)
        self._free.append(slot)
        self._free.sort(reverse=True)
        if not self._used and (self.num_slots, self.capacity) != self._initial:
            self._allocate(*self._initial)  # idle: give the memory back

    def ensure_capacity(self, length: int) -> None:
        """Make room for positions ``[0, length)`` in every slot."""
        if length > self.max_capacity:
            raise ValueError(f"sequence length {length} exceeds the KV cache limit {self.max_capacity}")
        if length > self.capacity:
            capacity = self.capacity
            while capacity < length:
                capacity *= 2
            self._resize(self.num_slots, min(capacity, self.max_capacity))

    # ------------------------------------------------------------------ per-layer access
    def write(self, layer: int, slots: torch.Tensor, positions: torch.Tensor, kv: torch.Tensor) -> None:
        # slots, positions [N]; kv [N, 2, Hkv, D] (keys, values)
        self.kv[layer][:, slots, :, positions] = kv

    def read(self, layer: int, slots: torch.Tensor | slice, length: int) -> tuple[torch.Tensor, torch.Tensor]:
        # slots [B] -> keys, values [B, Hkv, L, D]; a slice of consecutive slots reads a view, no copy
        kv = self.kv[layer][:, slots, :, :length]
        return kv[0], kv[1]
