"""The one interface every LLM backend implements: prompt ids in, an async stream of token ids out.

A backend knows nothing about audio. Models describe what they may emit with a
:class:`TokenConstraint` (a grammar over token-id ranges), which every backend applies at every
step, so output is always well-formed whatever the weights (random test models included).
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field

Ranges = tuple[tuple[int, int], ...]
"""Allowed next-token ids as half-open ``[lo, hi)`` ranges, sorted and disjoint."""


class TokenConstraint(abc.ABC):
    """A per-request grammar: which token ids may come next, given what was generated so far.

    Implementations must be deterministic functions of ``generated`` (backends such as vLLM
    call them from their own threads with the full history) and cheap: they are called once per
    decoding step. Returning ``None`` means "anything".
    """

    @abc.abstractmethod
    def allowed(self, generated: Sequence[int]) -> Ranges | None:
        """Ranges of ids allowed as token number ``len(generated)`` of the output."""

    def is_complete(self, generated: Sequence[int]) -> bool:
        """Whether ``generated`` already ends the grammar (no further token may follow)."""
        return False

    def vocabulary(self) -> Ranges | None:
        """Every id :meth:`allowed` can ever return, or ``None`` (anything). A model passes it to
        its backend as :attr:`~fasttts.backends.registry.BackendConfig.output_ids`."""
        return None


def merge_ranges(ranges: Iterable[tuple[int, int]]) -> Ranges:
    """Sort half-open ranges and merge touching/overlapping ones (the contract wants them disjoint)."""
    merged: list[tuple[int, int]] = []
    for lo, hi in sorted(ranges):
        if merged and lo <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(hi, merged[-1][1]))
        else:
            merged.append((lo, hi))
    return tuple(merged)


@dataclass(frozen=True)
class GenerationRequest:
    """One LLM request, in token ids. Sampling fields are already resolved (no ``None``)."""

    prompt_ids: list[int]
    max_tokens: int
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    repetition_penalty: float = 1.0
    stop_ids: frozenset[int] = field(default_factory=frozenset)
    """Generation ends after emitting one of these (the stop token is yielded)."""
    seed: int | None = None
    constraint: TokenConstraint | None = None
    request_id: str | None = None


class LLMBackend(abc.ABC):
    """Async token generator. Cancelling the consumer of :meth:`generate` (closing the async
    iterator, or cancelling the task awaiting it) must stop that request's generation at once and
    free its memory, without disturbing other requests in the same batch."""

    name: str = "base"

    @abc.abstractmethod
    def generate(self, request: GenerationRequest) -> AsyncIterator[int]:
        """Yield generated token ids one by one, ending at a stop id, ``max_tokens`` or when the
        constraint is complete."""

    async def start(self) -> None:
        """Start background machinery (threads, engines). Idempotent."""

    async def shutdown(self) -> None:
        """Stop background machinery and free memory."""

    @property
    def num_active(self) -> int:
        """Requests currently generating (for metrics and cancellation tests)."""
        return 0
