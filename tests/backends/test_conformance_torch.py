"""The backend conformance suite against the torch backend (the reference implementation)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from conformance import Conformance, tiny_spark_llm
from fasttts.backends.registry import BackendConfig
from fasttts.backends.torch_backend import TorchBackend


class TestTorchConformance(Conformance):
    @pytest_asyncio.fixture(scope="class", loop_scope="session")
    async def backend(self, tmp_path_factory) -> AsyncIterator[TorchBackend]:
        config = BackendConfig(model_dir=str(tiny_spark_llm(tmp_path_factory)), device="cpu", max_length=2048, batch_size=8)
        backend = TorchBackend(config, prefill_chunk=64)
        await backend.start()
        yield backend
        await backend.shutdown()

    def batched_requests(self, backend: TorchBackend) -> int:
        return backend.stats.max_batch
