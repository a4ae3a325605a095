"""The backend conformance suite against the torch backend (the reference implementation), in
each weight format: the Spark grammar, stops, seeds and batching hold whatever the format."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio
from conformance import Conformance, tiny_spark_llm

from fasttts.backends.registry import BackendConfig
from fasttts.backends.torch_backend import TorchBackend
from fasttts.backends.torch_llm.cpu_linear import FORMATS


class TestTorchConformance(Conformance):
    @pytest_asyncio.fixture(scope="class", loop_scope="session", params=FORMATS)
    async def backend(self, tmp_path_factory, request) -> AsyncIterator[TorchBackend]:
        config = BackendConfig(model_dir=str(tiny_spark_llm(tmp_path_factory)), device="cpu", max_length=2048, batch_size=8, dtype=request.param)
        backend = TorchBackend(config, prefill_chunk=64)
        await backend.start()
        assert backend.weight_format == request.param
        yield backend
        await backend.shutdown()

    def batched_requests(self, backend: TorchBackend) -> int:
        return backend.stats.max_batch
