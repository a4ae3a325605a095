"""The ``mlx-lm`` backend: the HF LLM directory run by MLX (Apple silicon; ``mlx[cpu]`` elsewhere).

mlx-lm loads the directory (:func:`mlx_lm.utils.load_model`) and supplies the sampling pieces:
greedy and top-k are mlx-lm's, the repetition penalty is its ``make_logits_processors`` over the
whole prompt + output (as the other backends do), the draw is ``mx.random.categorical``; top-p is
ours (see :func:`_top_p`). The request's :class:`~fasttts.backends.base.TokenConstraint` is one
more logits processor that masks disallowed ids at every step.

MLX streams are thread-local, so one engine thread owns the model and every request's KV cache
(mlx-lm's own ``generate_step`` uses a stream made on the importing thread, so we drive the
model directly). Each step builds every active request's next token lazily and evaluates them
together; requests join and leave between steps. MLX's random state is global, so each token's
draw is seeded from the request's own generator: a seed gives the same tokens whatever else runs.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fasttts.backends._constraint_utils import allowed_mask
from fasttts.backends.base import GenerationRequest, Ranges, check_request
from fasttts.backends.engine_thread import END, Delivery, EngineThread, EngineThreadBackend, ThreadRequest, stream
from fasttts.backends.registry import BackendConfig
from fasttts.errors import MissingExtraError, ModelLoadError

__all__ = ["MLXBackend"]


_DTYPES = {"float16": "float16", "bfloat16": "bfloat16", "float32": "float32"}


def _import_mlx() -> tuple[Any, Any]:
    try:
        import mlx.core as mx
        import mlx_lm.sample_utils as sample_utils
    except ImportError:
        raise MissingExtraError("mlx-lm", "mlx") from None
    return mx, sample_utils


@dataclass(eq=False, kw_only=True)
class _Request(ThreadRequest):
    """One request inside the engine thread."""

    seeds: np.random.Generator
    cache: list[Any] | None = None
    tokens: Any = None  # mx.array [T], prompt + generated (for the repetition penalty)
    logits: Any = None  # mx.array [1, V], for the next token
    sampler: Any = None
    processors: list[Any] = field(default_factory=list)


class _Engine(EngineThread[_Request]):
    """Owns the MLX model; every MLX call happens on its thread (loaded there too)."""

    name = "mlx-lm"

    def __init__(self, config: BackendConfig, prefill_chunk: int) -> None:
        self.config, self.prefill_chunk = config, prefill_chunk
        self.steps = 0
        self.max_batch = 0
        self._pending: list[_Request] = []  # admitted, not prefilled yet
        self._active: list[_Request] = []
        self._masks: dict[Ranges, Any] = {}
        super().__init__()
        self.start()

    # ------------------------------------------------------------------ engine thread
    def setup(self) -> None:
        self.mx, self.sample_utils = _import_mlx()
        from mlx_lm.models.cache import make_prompt_cache
        from mlx_lm.utils import load_model

        self.make_prompt_cache = make_prompt_cache
        try:
            self.model, model_config = load_model(Path(self.config.model_dir))
        except Exception as exc:
            raise ModelLoadError(f"mlx-lm could not load {self.config.model_dir}: {exc}") from exc
        if self.config.dtype in _DTYPES:
            self.model.set_dtype(getattr(self.mx, _DTYPES[self.config.dtype]))
        self.vocab_size = int(model_config["vocab_size"])
        self.max_length = min(self.config.max_length, int(model_config.get("max_position_embeddings", self.config.max_length)))

    def admit(self, newcomers: list[_Request]) -> None:
        self._pending.extend(newcomers)

    def requests(self) -> list[_Request]:
        return [*self._pending, *self._active]

    def release(self, req: _Request) -> None:
        for group in (self._pending, self._active):
            if req in group:
                group.remove(req)
        req.cache = req.logits = req.tokens = None  # the KV cache goes with them

    def step(self, out: list[tuple[_Request, Delivery]]) -> None:
        for req in [r for r in self.requests() if r.cancelled]:
            self.retire(req)
        while self._pending:
            req = self._pending[0]
            self._prefill(req)
            self._active.append(self._pending.pop(0))
        self._decode(out)

    def _prefill(self, req: _Request) -> None:
        mx, r = self.mx, req.request
        req.cache = self.make_prompt_cache(self.model)
        prompt = mx.array(r.prompt_ids)
        for start in range(0, len(r.prompt_ids) - 1, self.prefill_chunk):
            end = min(start + self.prefill_chunk, len(r.prompt_ids) - 1)
            self.model(prompt[None, start:end], cache=req.cache)
            mx.eval([c.state for c in req.cache])
        req.logits = self.model(prompt[None, -1:], cache=req.cache)[:, -1, :]
        req.tokens = prompt
        req.sampler = self._sampler(r)
        req.processors = self.sample_utils.make_logits_processors(
            repetition_penalty=r.repetition_penalty if r.repetition_penalty != 1.0 else None,
            repetition_context_size=self.max_length,  # the whole prompt + output, like the other backends
        )
        if r.constraint is not None:
            req.processors.append(self._constraint_processor(req))

    def _sampler(self, r: GenerationRequest) -> Any:
        """Temperature, then mlx-lm's top-k, then top-p, then a categorical draw (the torch
        backend's order). Greedy is mlx-lm's ``make_sampler(temp=0)``."""
        mx, su = self.mx, self.sample_utils
        if r.temperature <= 0:
            return su.make_sampler(temp=0.0)
        top_k = r.top_k if 0 < r.top_k < self.vocab_size else 0

        def sampler(logprobs: Any) -> Any:
            x = logprobs * (1.0 / r.temperature)
            if top_k:
                x = su.apply_top_k(x, top_k)
            if r.top_p < 1.0:
                x = _top_p(mx, x, r.top_p)
            return mx.random.categorical(x)

        return sampler

    def _constraint_processor(self, req: _Request) -> Any:
        mx, constraint = self.mx, req.request.constraint
        assert constraint is not None

        def processor(tokens: Any, logits: Any) -> Any:
            ranges = constraint.allowed(req.generated)
            if ranges is None:
                return logits
            mask = self._masks.get(ranges)
            if mask is None:
                mask = self._masks[ranges] = mx.array(allowed_mask(ranges, logits.shape[-1]))
            return mx.where(mask, logits, mx.array(-float("inf"), dtype=logits.dtype))

        return processor

    def _decode(self, out: list[tuple[_Request, Delivery]]) -> None:
        """Sample one token for every active request, then feed each back (lazily)."""
        mx = self.mx
        if not self._active:
            return
        picks = []
        for req in self._active:
            logits = req.logits
            for processor in req.processors:
                logits = processor(req.tokens, logits)
            logprobs = logits - mx.logsumexp(logits, axis=-1, keepdims=True)
            mx.random.seed(int(req.seeds.integers(2**63)))  # this token's draw, from the request's stream
            picks.append(req.sampler(logprobs))
        mx.eval(picks)
        self.steps += 1
        self.max_batch = max(self.max_batch, len(picks))
        for req, pick in zip(list(self._active), picks):
            token = int(pick.item())
            req.generated.append(token)
            out.append((req, token))
            r = req.request
            if (
                token in r.stop_ids
                or len(req.generated) >= min(r.max_tokens, self.max_length - len(r.prompt_ids))
                or (r.constraint is not None and r.constraint.is_complete(req.generated))
            ):
                out.append((req, END))
                self.retire(req)
                continue
            y = pick.reshape(1)
            req.tokens = mx.concatenate([req.tokens, y])
            req.logits = self.model(y[None], cache=req.cache)[:, -1, :]
        if not self._active:
            mx.clear_cache()


def _top_p(mx: Any, logits: Any, p: float) -> Any:
    """Keep the smallest head of tokens whose mass reaches ``p`` (the top token always).

    Not mlx-lm's ``apply_top_p``: it keeps tokens whose ascending cumulative mass exceeds
    ``1 - p``, which in float32 drops every token once ``p`` is below ~1e-7 (``1 - p`` rounds
    to 1), and sampling then fails."""
    order = mx.argsort(-logits, axis=-1)  # [1, V] descending
    probs = mx.take_along_axis(mx.softmax(logits, axis=-1), order, axis=-1)
    keep_sorted = (mx.cumsum(probs, axis=-1) - probs) <= p
    keep = mx.put_along_axis(mx.zeros(logits.shape, dtype=mx.bool_), order, keep_sorted, axis=-1)
    return mx.where(keep, logits, mx.array(-float("inf"), dtype=logits.dtype))


class MLXBackend(EngineThreadBackend[_Engine]):
    """``Class(BackendConfig)``; the model directory is the HF LLM directory itself."""

    name = "mlx-lm"

    def __init__(self, config: BackendConfig, *, prefill_chunk: int = 512) -> None:
        _import_mlx()  # fail early, with the extra to install
        super().__init__()
        self.config = config
        self.prefill_chunk = prefill_chunk
        self._seeds = random.Random(config.seed)  # seeds for requests that bring none

    def _build(self) -> _Engine:
        return _Engine(self.config, self.prefill_chunk)

    @property
    def max_batch(self) -> int:
        """The most requests that got a token in one step so far."""
        return self._engine.max_batch if self._engine is not None else 0

    async def generate(self, request: GenerationRequest) -> AsyncGenerator[int, None]:
        engine = await self._running()
        check_request(request, max_length=engine.max_length, vocab_size=engine.vocab_size)
        if request.max_tokens <= 0:
            return
        seed = request.seed if request.seed is not None else self._seeds.getrandbits(63)
        req = _Request(request=request, seeds=np.random.default_rng(seed))
        async with contextlib.aclosing(stream(engine, req)) as tokens:
            async for token in tokens:
                yield token
