"""The ``sglang`` backend: SGLang's in-process ``Engine`` (CUDA only; no CPU build exists).

A :class:`~fasttts.backends.base.GenerationRequest` becomes one ``Engine.async_generate`` call
on token ids (``skip_tokenizer_init``), streamed incrementally (``incremental_streaming_output``):

- sampling options map one to one (``top_k=0`` is SGLang's ``-1``; the seed is
  ``sampling_seed``);
- the :class:`~fasttts.backends.base.TokenConstraint` travels, pickled and hex-encoded (SGLang
  accepts only JSON values in ``custom_params``), to a custom logit processor
  (:class:`TokenConstraintProcessor`) that SGLang runs in its scheduler process on every step,
  masking each row to ``constraint.allowed(req.output_ids)``; the processor keeps the decoded
  constraints keyed by that string, so each is unpickled once; constraints must pickle
  (SparkGrammar does);
- stop ids, ``max_tokens`` and a complete constraint are enforced here as tokens arrive, with
  ``ignore_eos`` set so that SGLang never stops early on the model's own EOS (its stop-token
  check is disabled together with EOS); when we stop first, or the consumer goes away, the
  request is aborted at once (``abort_request``), which frees its KV cache.

Engine arguments: ``mem_fraction_static`` from ``gpu_memory_utilization``, ``context_length``
from ``max_length``, ``max_running_requests`` from ``batch_size``, plus dtype, device and seed;
and ``disable_overlap_schedule``: SGLang's overlap scheduler launches step N+1 (sampling, so our
processor, included) before it appends step N's token to ``req.output_ids``, so a processor would
see one token too few and a grammar that depends on position (Spark's) would mask for the step
before. Without overlap each step's result is processed before the next step runs.

Greedy (``temperature`` 0) needs nothing of ours: SGLang's ``SamplingParams`` turns a temperature
below 1e-6 into ``top_k`` 1, which its sampler takes as argmax, after the custom processors ran.
"""

from __future__ import annotations

import asyncio
import functools
import json
import pickle
import uuid
from collections.abc import AsyncGenerator
from typing import Any

import torch

from fasttts.backends.base import GenerationRequest, LLMBackend, check_request, engine_dtype, model_vocab_size
from fasttts.backends.registry import BackendConfig
from fasttts.errors import BackendError, InvalidRequestError, MissingExtraError

__all__ = ["CONSTRAINT_KEY", "SGLangBackend", "TokenConstraintProcessor", "sampling_params"]

CONSTRAINT_KEY = "fasttts_constraint"
"""The ``custom_params`` entry holding a request's pickled constraint, as a hex string."""


def _import_sglang() -> Any:
    """The sglang module (tests replace this with a double)."""
    try:
        import sglang
    except ImportError:
        raise MissingExtraError("sglang", "sglang") from None
    return sglang


class TokenConstraintProcessor:
    """SGLang custom logit processor: masks each row to its request's allowed ranges.

    SGLang deserialises ``to_str()`` (``dill.loads``, which reads plain pickles), instantiates it
    in its scheduler process (a fresh instance per batch) and calls it with ``logits`` [B, V] and
    one ``custom_params`` dict per row, holding our :data:`CONSTRAINT_KEY` and SGLang's ``__req__``.
    It needs nothing from SGLang's base class, so it is pickled by reference and this module stays
    free of sglang imports."""

    def __call__(self, logits: Any, custom_param_list: list[dict[str, Any] | None] | None = None) -> Any:
        for row, params in enumerate(custom_param_list or []):
            if params is None or (encoded := params.get(CONSTRAINT_KEY)) is None:
                continue
            constraint = decode_constraint(encoded)
            ranges = constraint.allowed(list(params["__req__"].output_ids))
            if ranges is None:
                continue
            masked = torch.full_like(logits[row], float("-inf"))
            for lo, hi in ranges:
                masked[lo:hi] = logits[row, lo:hi]
            logits[row] = masked
        return logits

    @classmethod
    def to_str(cls) -> str:
        return json.dumps({"callable": pickle.dumps(cls).hex()})


@functools.lru_cache(maxsize=4096)
def decode_constraint(encoded: str) -> Any:
    """The constraint behind a :data:`CONSTRAINT_KEY` value; cached in the scheduler process, since
    the processor runs every step and a constraint is a pure function of the tokens generated."""
    return pickle.loads(bytes.fromhex(encoded))


def sampling_params(request: GenerationRequest) -> dict[str, Any]:
    """SGLang's sampling parameters for ``request`` (constraint included, stopping excluded); JSON values only."""
    params: dict[str, Any] = {
        "max_new_tokens": request.max_tokens,
        "temperature": request.temperature,
        "top_k": request.top_k if request.top_k > 0 else -1,
        "top_p": request.top_p,
        "repetition_penalty": request.repetition_penalty,
        "ignore_eos": True,  # we stop on request.stop_ids ourselves (see the module docstring)
        "skip_special_tokens": False,
    }
    if request.seed is not None:
        params["sampling_seed"] = request.seed
    if request.constraint is not None:
        params["custom_params"] = {CONSTRAINT_KEY: pickle.dumps(request.constraint).hex()}
    return params


class SGLangBackend(LLMBackend):
    name = "sglang"

    def __init__(self, config: BackendConfig) -> None:
        self._sgl = _import_sglang()  # fail early, with the extra to install
        self.config = config
        self._engine: Any = None
        self._active: set[str] = set()
        self._lock = asyncio.Lock()
        self._vocab_size = model_vocab_size(config.model_dir)

    def engine_args(self) -> dict[str, Any]:
        cfg = self.config
        return dict(
            model_path=cfg.model_dir,
            skip_tokenizer_init=True,
            incremental_streaming_output=True,
            mem_fraction_static=cfg.gpu_memory_utilization,
            context_length=cfg.max_length,
            max_running_requests=cfg.batch_size,
            dtype=engine_dtype(cfg.dtype, "SGLang"),
            device="cuda" if cfg.device == "auto" else cfg.device,
            random_seed=cfg.seed,
            enable_custom_logit_processor=True,
            disable_overlap_schedule=True,  # the processor must see every token generated (module docstring)
            log_level="error",
        )

    async def start(self) -> None:
        async with self._lock:
            if self._engine is None:
                args = self.engine_args()  # a bad setting is named here, not wrapped as a start failure
                try:
                    self._engine = await asyncio.to_thread(lambda: self._sgl.Engine(**args))
                except Exception as exc:
                    raise BackendError(f"SGLang could not start: {exc}") from exc

    async def shutdown(self) -> None:
        async with self._lock:
            if self._engine is not None:
                await asyncio.to_thread(self._engine.shutdown)
                self._engine = None

    @property
    def num_active(self) -> int:
        return len(self._active)

    async def generate(self, request: GenerationRequest) -> AsyncGenerator[int, None]:
        check_request(request, max_length=self.config.max_length, vocab_size=self._vocab_size)
        if request.max_tokens <= 0:
            return
        await self.start()
        kwargs = self.generate_kwargs(request)
        rid = kwargs["rid"]
        self._active.add(rid)
        generated: list[int] = []
        finished = False
        stream = None
        try:
            stream = await self._engine.async_generate(**kwargs)
            async for chunk in stream:
                finished = (chunk.get("meta_info") or {}).get("finish_reason") is not None
                for token in chunk.get("output_ids", ()):  # incremental: incremental_streaming_output
                    generated.append(int(token))
                    yield generated[-1]
                    if self._done(request, generated):
                        return
        except ValueError as exc:  # SGLang rejects bad parameters with ValueError
            raise InvalidRequestError(str(exc)) from exc
        finally:
            self._active.discard(rid)
            if not finished and self._engine is not None:
                self._engine.tokenizer_manager.abort_request(rid)
            if stream is not None:
                await stream.aclose()

    def generate_kwargs(self, request: GenerationRequest) -> dict[str, Any]:
        """The keyword arguments of ``Engine.async_generate`` for ``request``."""
        kwargs: dict[str, Any] = dict(input_ids=list(request.prompt_ids), sampling_params=sampling_params(request),
                                      stream=True, rid=request.request_id or uuid.uuid4().hex)  # fmt: skip
        if request.constraint is not None:
            kwargs["custom_logit_processor"] = TokenConstraintProcessor.to_str()
        return kwargs

    @staticmethod
    def _done(request: GenerationRequest, generated: list[int]) -> bool:
        return (
            generated[-1] in request.stop_ids
            or len(generated) >= request.max_tokens
            or (request.constraint is not None and request.constraint.is_complete(generated))
        )
