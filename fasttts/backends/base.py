"""The one interface every LLM backend implements: prompt ids in, an async stream of token ids out.

A backend knows nothing about audio. Models describe what they may emit with a
:class:`TokenConstraint` (a grammar over token-id ranges), which every backend applies at every
step, so output is always well-formed whatever the weights (random test models included).
"""

from __future__ import annotations

import abc
import json
from collections.abc import AsyncGenerator, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from fasttts.errors import InvalidRequestError, ModelLoadError
from fasttts.params import SamplingParams

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

    @classmethod
    def from_sampling(
        cls,
        prompt_ids: Sequence[int],
        sampling: SamplingParams,
        *,
        stop_ids: frozenset[int],
        constraint: TokenConstraint | None = None,
        max_tokens: int | None = None,
        request_id: str | None = None,
    ) -> GenerationRequest:
        """The request a model makes of its backend: ``sampling`` resolved against the model's
        defaults (:meth:`SamplingParams.with_defaults`); ``max_tokens`` (default: the sampling's)
        lets a model cap or round it. A sampling field still ``None`` keeps this class's neutral
        default (no temperature scaling, no top-k/top-p cut, no penalty)."""
        limit = sampling.max_tokens if max_tokens is None else max_tokens
        if limit is None:
            raise ValueError("max_tokens is unresolved: resolve sampling against the model's defaults first")
        given = {name: getattr(sampling, name) for name in ("temperature", "top_k", "top_p", "repetition_penalty") if getattr(sampling, name) is not None}
        return cls(prompt_ids=list(prompt_ids), max_tokens=limit, stop_ids=stop_ids, seed=sampling.seed, constraint=constraint, request_id=request_id, **given)


def check_request(request: GenerationRequest, *, max_length: int, vocab_size: int) -> None:
    """Reject, with a 4xx-mapped error, what no backend can run (every backend calls this first)."""
    if not request.prompt_ids:
        raise InvalidRequestError("the prompt is empty", param="input")
    if len(request.prompt_ids) >= max_length:
        raise InvalidRequestError(f"the prompt has {len(request.prompt_ids)} tokens; the limit is {max_length - 1}", param="input")
    if min(request.prompt_ids) < 0 or max(request.prompt_ids) >= vocab_size:
        raise InvalidRequestError(f"prompt token ids must be in [0, {vocab_size})", param="input")
    if request.temperature < 0 or not 0 < request.top_p <= 1 or request.top_k < 0 or request.repetition_penalty <= 0:
        raise InvalidRequestError("invalid sampling parameters (temperature >= 0, 0 < top_p <= 1, top_k >= 0, repetition_penalty > 0)", param="temperature")


def model_vocab_size(model_dir: str | Path) -> int:
    """``vocab_size`` of a Hugging Face LLM directory's ``config.json`` (what :func:`check_request`
    bounds prompt ids by, for backends whose engine does not expose it)."""
    path = Path(model_dir) / "config.json"
    try:
        return int(json.loads(path.read_text())["vocab_size"])
    except (OSError, ValueError, KeyError) as exc:
        raise ModelLoadError(f"cannot read vocab_size from {path}: {exc}") from exc


def engine_dtype(dtype: str, backend: str) -> str:
    """The ``dtype`` to hand an engine that loads the checkpoint itself (vLLM, SGLang).

    ``int8`` is the torch backend's own weight-only format: those engines have no such dtype and
    would fail deep inside their start-up, so it is refused here with the flag named.
    """
    if dtype == "int8":
        raise ModelLoadError(f"--torch_dtype int8 is the torch backend's weight-only format; {backend} takes auto, float16, bfloat16 or float32")
    return dtype


class LLMBackend(abc.ABC):
    """Async token generator. Cancelling the consumer of :meth:`generate` (closing the async
    iterator, or cancelling the task awaiting it) must stop that request's generation at once and
    free its memory, without disturbing other requests in the same batch."""

    name: str = "base"

    @abc.abstractmethod
    def generate(self, request: GenerationRequest) -> AsyncGenerator[int, None]:
        """Yield generated token ids one by one, ending at a stop id, ``max_tokens`` or when the
        constraint is complete. An async generator, so that a consumer stopping early can
        ``aclose()`` it and the request ends then, not when the garbage collector gets to it."""

    async def start(self) -> None:
        """Start background machinery (threads, engines). Idempotent."""

    async def shutdown(self) -> None:
        """Stop background machinery and free memory."""

    @property
    def num_active(self) -> int:
        """Requests currently generating (for metrics and cancellation tests)."""
        return 0

    @property
    def weight_format(self) -> str | None:
        """The format the LLM's weights run in once loaded (``bfloat16``, ``int8``, ...), where the
        backend chooses it itself (``--torch_dtype auto``); None when unknown or not loaded yet."""
        return None
