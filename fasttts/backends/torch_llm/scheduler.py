"""Continuous batching on the engine thread (:class:`~fasttts.backends.engine_thread.EngineThread`).

Each step (1) drops cancelled sequences, (2) prefills waiting prompts up to a token budget, then
(3) runs one batched decode step for every sequence already generating. So newcomers join between
decode steps without stalling the others for a whole long prompt, and a finished or cancelled
sequence leaves (and frees its KV slot) at the next step. New tokens go to each request's asyncio
queue through ``loop.call_soon_threadsafe``, one call per event loop per step; the event loop
never waits on the model.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from fasttts.backends.engine_thread import END, Delivery, EngineThread, ThreadRequest
from fasttts.backends.torch_llm.kv_cache import KVCache
from fasttts.backends.torch_llm.model import AttnBatch, CausalLM
from fasttts.backends.torch_llm.sampling import SamplingState, allowed_mask, sample, vocab_window


@dataclass(eq=False, kw_only=True)
class Sequence(ThreadRequest):
    """One request as the scheduler sees it."""

    sampling: SamplingState
    slot: int | None = None
    prefilled: int = 0  # prompt tokens already in the KV cache

    @property
    def length(self) -> int:
        return len(self.request.prompt_ids) + len(self.generated)


Out = list[tuple[Sequence, Delivery]]  # tokens, ENDs and errors for the event loops, in order


def _slot(seq: Sequence) -> int:
    assert seq.slot is not None  # a sequence being prefilled or decoded holds a cache slot
    return seq.slot


@dataclass
class SchedulerStats:
    """Counters proving (and measuring) batching."""

    prefill_chunks: int = 0
    decode_steps: int = 0
    decode_tokens: int = 0  # sum over decode steps of the batch size
    max_batch: int = 0
    finished: int = 0
    cancelled: int = 0

    @property
    def mean_batch(self) -> float:
        return self.decode_tokens / self.decode_steps if self.decode_steps else 0.0


class Scheduler(EngineThread[Sequence]):
    name = "torch"

    def __init__(self, model: CausalLM, *, batch_size: int, max_length: int, prefill_chunk: int = 512) -> None:
        param = model.lm_head_weight
        self.model, self.batch_size, self.max_length, self.prefill_chunk = model, batch_size, max_length, prefill_chunk
        self.device, self.vocab_size = param.device, model.cfg.vocab_size
        self.cache = KVCache(
            num_layers=model.cfg.num_layers,
            num_kv_heads=model.cfg.num_kv_heads,
            head_dim=model.cfg.head_dim,
            max_slots=batch_size,
            max_capacity=max_length,
            dtype=model.activation_dtype,
            device=param.device,
        )
        self.stats = SchedulerStats()
        self._seen: torch.Tensor | None = None  # [slots, V] bool, for repetition penalties
        self._waiting: list[Sequence] = []  # admitted, prompt not fully prefilled
        self._running: list[Sequence] = []
        super().__init__()

    # ------------------------------------------------------------------ engine thread
    def admit(self, newcomers: list[Sequence]) -> None:
        self._waiting.extend(newcomers)

    def requests(self) -> list[Sequence]:
        return [*self._waiting, *self._running]

    def release(self, seq: Sequence) -> None:
        if seq in self._waiting:
            self._waiting.remove(seq)
        if seq in self._running:
            self._running.remove(seq)
        if seq.slot is not None:
            self.cache.release(seq.slot)
            seq.slot = None

    def step(self, out: Out) -> None:
        for seq in [s for s in self.requests() if s.cancelled]:
            self.stats.cancelled += 1
            self.retire(seq)
        with torch.inference_mode():
            self._prefill(out)
            self._decode(out)

    def _prefill(self, out: Out) -> None:
        """Prefill waiting prompts, at most ``prefill_chunk`` tokens per step: several short prompts
        that arrive together all start in one step (so none waits a decode step per earlier
        newcomer), while a long prompt is cut into chunks and running sequences decode in between."""
        budget = self.prefill_chunk
        while self._waiting and budget > 0:
            used = self._prefill_one(out, budget)
            if not used:
                return
            budget -= used

    def _prefill_one(self, out: Out, budget: int) -> int:
        """Prefill up to ``budget`` tokens of the first waiting prompt; returns how many (0: no slot)."""
        seq = self._waiting[0]
        if seq.slot is None:
            if self.cache.num_free == 0:
                return 0  # batch full: wait for a sequence to leave
            seq.slot = self.cache.acquire()
            self._reset_seen(seq)
        slot = _slot(seq)
        prompt = seq.request.prompt_ids
        start, end = seq.prefilled, min(len(prompt), seq.prefilled + budget)
        self.cache.ensure_capacity(end)
        n = end - start
        positions = torch.arange(start, end, device=self.device)
        mask = (torch.arange(end, device=self.device)[None, :] <= positions[:, None])[None, None]  # [1, 1, n, end]
        batch = AttnBatch(
            slots=torch.full((n,), slot, device=self.device),
            positions=positions,
            key_slots=slice(slot, slot + 1),
            key_len=end,
            mask=mask,
            queries_per_seq=n,
        )
        hidden = self.model(torch.tensor(prompt[start:end], device=self.device), batch, self.cache)
        seq.prefilled = end
        self.stats.prefill_chunks += 1
        if end == len(prompt):
            self._waiting.pop(0)
            self._running.append(seq)
            self._sample_and_emit([seq], hidden[-1:], out)
        return n

    def _decode(self, out: Out) -> None:
        """One token for every running sequence (including one whose prompt just finished)."""
        seqs = sorted(self._running, key=_slot)  # consecutive slots read the cache without a copy
        if not seqs:
            return
        slot_ids = [_slot(s) for s in seqs]
        consecutive = slot_ids == list(range(slot_ids[0], slot_ids[0] + len(seqs)))
        positions = torch.tensor([s.length - 1 for s in seqs], device=self.device)  # of each last token
        key_len = max(s.length for s in seqs)
        self.cache.ensure_capacity(key_len)
        slots = torch.tensor(slot_ids, device=self.device)
        mask = None
        if any(s.length != key_len for s in seqs):
            mask = (torch.arange(key_len, device=self.device)[None, :] <= positions[:, None])[:, None, None]  # [B,1,1,L]
        key_slots = slice(slot_ids[0], slot_ids[0] + len(seqs)) if consecutive else slots
        batch = AttnBatch(slots=slots, positions=positions, key_slots=key_slots, key_len=key_len, mask=mask, queries_per_seq=1)
        hidden = self.model(torch.tensor([s.generated[-1] for s in seqs], device=self.device), batch, self.cache)
        self.stats.decode_steps += 1
        self.stats.decode_tokens += len(seqs)
        self.stats.max_batch = max(self.stats.max_batch, len(seqs))
        self._sample_and_emit(seqs, hidden, out)

    # ------------------------------------------------------------------ sampling and stopping
    def _sample_and_emit(self, seqs: list[Sequence], hidden: torch.Tensor, out: Out) -> None:
        """Sample the next token of each sequence from hidden [B, C], emit it, retire finished ones."""
        allowed = [s.request.constraint.allowed(s.generated) if s.request.constraint else None for s in seqs]
        for seq, ranges in zip(seqs, allowed):
            if ranges is not None and len(ranges) == 0:  # the grammar admits nothing more
                self._finish(seq, out)
        live = [i for i, seq in enumerate(seqs) if seq.slot is not None]
        if not live:
            return
        seqs, allowed, hidden = [seqs[i] for i in live], [allowed[i] for i in live], hidden[live]
        lo, hi = vocab_window(allowed, self.vocab_size)
        logits = self.model.logits(hidden, None if (lo, hi) == (0, self.vocab_size) else (lo, hi))
        slots = torch.tensor([s.slot for s in seqs], device=self.device)
        self._grow_seen()
        seen = self._seen[slots, lo:hi] if self._seen is not None else None
        picked = sample(logits, [s.sampling for s in seqs], seen, allowed_mask(allowed, (lo, hi), self.device))
        tokens = (picked + lo).tolist()
        if self._seen is not None:
            self._seen[slots, picked + lo] = True
        for seq, token in zip(seqs, tokens):
            seq.generated.append(token)
            out.append((seq, token))
            req = seq.request
            if (
                token in req.stop_ids
                or len(seq.generated) >= req.max_tokens
                or seq.length >= self.max_length
                or (req.constraint is not None and req.constraint.is_complete(seq.generated))
            ):
                self._finish(seq, out)

    def _finish(self, seq: Sequence, out: Out) -> None:
        self.stats.finished += 1
        out.append((seq, END))
        self.retire(seq)

    def _reset_seen(self, seq: Sequence) -> None:
        """Mark the prompt in this slot's row of the seen-token matrix (penalised requests only)."""
        if seq.sampling.repetition_penalty == 1.0:
            return
        if self._seen is None:
            self._seen = torch.zeros(0, self.vocab_size, dtype=torch.bool, device=self.device)
        self._grow_seen()
        self._seen[seq.slot] = False
        self._seen[seq.slot, torch.tensor(seq.request.prompt_ids, device=self.device)] = True

    def _grow_seen(self) -> None:
        """Keep one seen-token row per allocated cache slot."""
        if self._seen is not None and self._seen.shape[0] < self.cache.num_slots:
            grown = torch.zeros(self.cache.num_slots, self.vocab_size, dtype=torch.bool, device=self.device)
            grown[: self._seen.shape[0]] = self._seen
            self._seen = grown
