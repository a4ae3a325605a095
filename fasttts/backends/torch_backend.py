"""The ``torch`` backend: our own pure-torch Qwen2/Llama with continuous batching.

No external engine: the model (:mod:`fasttts.backends.torch_llm.model`) is loaded strictly from
the HF directory, and one scheduler thread (:mod:`fasttts.backends.torch_llm.scheduler`) decodes
every running request together. :meth:`TorchBackend.generate` only enqueues and awaits tokens, so
the event loop never runs model code.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import AsyncGenerator

import torch

from fasttts.backends.base import GenerationRequest, check_request
from fasttts.backends.engine_thread import EngineThreadBackend, stream
from fasttts.backends.registry import BackendConfig
from fasttts.backends.torch_llm.loader import load_model
from fasttts.backends.torch_llm.model import CausalLM
from fasttts.backends.torch_llm.sampling import SamplingState
from fasttts.backends.torch_llm.scheduler import Scheduler, SchedulerStats, Sequence

__all__ = ["TorchBackend"]


class TorchBackend(EngineThreadBackend[Scheduler]):
    name = "torch"

    def __init__(self, config: BackendConfig, *, prefill_chunk: int = 512) -> None:
        super().__init__()
        self.config = config
        self.prefill_chunk = prefill_chunk
        self._seeds = random.Random(config.seed)  # seeds for requests that bring none

    def _build(self) -> Scheduler:
        """Load the model (raises ModelLoadError) and start its scheduler."""
        cfg = self.config
        model = load_model(cfg.model_dir, device=cfg.device, dtype=cfg.dtype, attn_implementation=cfg.attn_implementation)
        max_length = min(cfg.max_length, model.cfg.max_position_embeddings)
        scheduler = Scheduler(model, batch_size=cfg.batch_size, max_length=max_length, prefill_chunk=self.prefill_chunk)
        scheduler.start()
        return scheduler

    # ------------------------------------------------------------------ introspection
    @property
    def stats(self) -> SchedulerStats:
        """Batching counters (max batch seen, mean batch per decode step, ...)."""
        return self.scheduler.stats if self.scheduler is not None else SchedulerStats()

    @property
    def scheduler(self) -> Scheduler | None:
        return self._engine

    @property
    def model(self) -> CausalLM | None:
        return self.scheduler.model if self.scheduler is not None else None

    @property
    def weight_format(self) -> str | None:
        return self.model.weight_format if self.model is not None else None

    # ------------------------------------------------------------------ generation
    async def generate(self, request: GenerationRequest) -> AsyncGenerator[int, None]:
        scheduler = await self._running()
        check_request(request, max_length=scheduler.max_length, vocab_size=scheduler.vocab_size)
        if request.max_tokens <= 0:
            return
        seed = request.seed if request.seed is not None else self._seeds.getrandbits(63)
        sampling = SamplingState(
            temperature=request.temperature,
            top_k=request.top_k,
            top_p=request.top_p,
            repetition_penalty=request.repetition_penalty,
            generator=torch.Generator().manual_seed(seed),
        )
        async with contextlib.aclosing(stream(scheduler, Sequence(request=request, sampling=sampling))) as tokens:
            async for token in tokens:
                yield token
