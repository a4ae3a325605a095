"""The mlx-lm backend (``mlx[cpu]`` here): the conformance suite, and how options reach mlx-lm."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

pytest.importorskip("mlx_lm")
pytestmark = pytest.mark.slow  # starts the backend's own engine

from conformance import Conformance, tiny_spark_llm  # noqa: E402

from fasttts.backends.mlx_backend import MLXBackend  # noqa: E402
from fasttts.backends.registry import BackendConfig, create_backend  # noqa: E402


class TestMLXConformance(Conformance):
    @pytest_asyncio.fixture(scope="class", loop_scope="session")
    async def backend(self, tmp_path_factory) -> AsyncIterator[MLXBackend]:
        config = BackendConfig(model_dir=str(tiny_spark_llm(tmp_path_factory)), device="cpu", max_length=2048, batch_size=8)
        backend = create_backend("mlx-lm", config)
        assert isinstance(backend, MLXBackend)
        await backend.start()
        yield backend
        await backend.shutdown()

    def batched_requests(self, backend: MLXBackend) -> int:
        return backend.max_batch


def test_top_p_keeps_the_smallest_head_reaching_p() -> None:
    import mlx.core as mx

    from fasttts.backends.mlx_backend import _top_p

    probs = [0.5, 0.3, 0.15, 0.05]
    logits = mx.log(mx.array([probs]))
    kept = lambda p: [i for i, v in enumerate(_top_p(mx, logits, p)[0].tolist()) if v != float("-inf")]
    assert kept(1e-12) == [0]  # tiny p: greedy (mlx-lm's own top-p keeps nothing here)
    assert kept(0.45) == [0]
    assert kept(0.6) == [0, 1]
    assert kept(0.9) == [0, 1, 2]
