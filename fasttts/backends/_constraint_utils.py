"""Constraints and sampling for backends that sample on the host (llama-cpp; masks for mlx, vLLM).

llama.cpp hands us one logits row per sequence; we apply the request's
:class:`~fasttts.backends.base.TokenConstraint` and every sampling option here, with the same
semantics as the torch backend (:mod:`fasttts.backends.torch_llm.sampling`): CTRL repetition
penalty over prompt + generated ids, then the allowed-id mask, then temperature (0 = greedy),
top-k, top-p, and one uniform draw per token from the request's own generator (inverse CDF), so a
seed gives the same tokens whatever else shares the batch. Other backends (mlx, vLLM) reuse
:func:`allowed_mask` to build their own masks.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from fasttts.backends.base import Ranges

__all__ = ["NumpySampler", "allowed_ids", "allowed_mask", "rows_of"]


def allowed_ids(ranges: Ranges, vocab_size: int) -> np.ndarray:
    """Every id in ``ranges`` (clipped to the vocabulary), ascending, int64."""
    parts = [np.arange(max(lo, 0), min(hi, vocab_size), dtype=np.int64) for lo, hi in ranges]
    return np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)


def rows_of(ranges: Ranges, ids: np.ndarray) -> np.ndarray:
    """Indices into the sorted ``ids`` of every id that lies in ``ranges``."""
    parts = [np.arange(np.searchsorted(ids, lo), np.searchsorted(ids, hi), dtype=np.int64) for lo, hi in ranges]
    return np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)


def allowed_mask(ranges: Ranges | None, vocab_size: int) -> np.ndarray | None:
    """[V] bool, True where allowed; ``None`` when everything is allowed."""
    if ranges is None:
        return None
    mask = np.zeros(vocab_size, dtype=bool)
    for lo, hi in ranges:
        mask[max(lo, 0) : min(hi, vocab_size)] = True
    return mask


class NumpySampler:
    """One request's sampling state: its settings, the ids it has seen, its random stream."""

    def __init__(self, *, temperature: float, top_k: int, top_p: float, repetition_penalty: float, seed: int, prompt_ids: Iterable[int]) -> None:
        self.temperature, self.top_k, self.top_p, self.repetition_penalty = temperature, top_k, top_p, repetition_penalty
        self.rng = np.random.default_rng(seed)
        self.seen: set[int] = set(prompt_ids)

    def sample(self, logits: np.ndarray, ranges: Ranges | None, row_ids: np.ndarray | None = None) -> int:
        """Pick the next id from ``logits`` (not modified) under the allowed ``ranges``.

        ``logits`` is [V], one score per id, or, with ``row_ids`` (sorted ids), one score per
        entry of ``row_ids`` (an LM head cut to a model's output vocabulary).
        """
        if row_ids is None:
            vocab = logits.shape[0]
            ids = rows = np.arange(vocab, dtype=np.int64) if ranges is None else allowed_ids(ranges, vocab)
        else:
            rows = np.arange(len(row_ids), dtype=np.int64) if ranges is None else rows_of(ranges, row_ids)
            ids = row_ids[rows]
        if ids.size == 0:
            raise ValueError("the constraint allows no token")
        cand = logits[rows].astype(np.float64)  # [N], candidates only (Spark: 8192 of 166,000)
        if self.repetition_penalty != 1.0 and self.seen:
            seen = np.fromiter(self.seen, dtype=np.int64, count=len(self.seen))
            hit = np.isin(ids, seen, assume_unique=True)
            vals = cand[hit]
            cand[hit] = np.where(vals < 0, vals * self.repetition_penalty, vals / self.repetition_penalty)
        if self.temperature <= 0:
            token = int(ids[int(np.argmax(cand))])
        else:
            token = int(ids[self._draw(cand / self.temperature)])
        self.seen.add(token)
        return token

    def _draw(self, scaled: np.ndarray) -> int:
        """Index into ``scaled`` [N] after top-k / top-p, by inverse CDF with one uniform draw."""
        n = scaled.shape[0]
        if 0 < self.top_k < n:  # the k best, then sorted (descending, ties in id order)
            head = np.argpartition(-scaled, self.top_k - 1)[: self.top_k]
            order = head[np.lexsort((head, -scaled[head]))]
        elif self.top_p < 1.0:
            order = np.argsort(-scaled, kind="stable")
        else:  # no filtering: any order will do
            order = np.arange(n)
        logits = scaled[order]
        probs = np.exp(logits - logits.max())
        probs /= probs.sum()
        if self.top_p < 1.0:
            cdf = np.cumsum(probs)
            probs = np.where(cdf - probs > self.top_p, 0.0, probs)  # smallest head with mass >= p
        cdf = np.cumsum(probs)
        u = self.rng.random()
        pick = min(int(np.searchsorted(cdf, u * cdf[-1], side="right")), len(order) - 1)
        return int(order[pick])
