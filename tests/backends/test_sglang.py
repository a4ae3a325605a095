"""The sglang backend's request/response mapping, against a test double of ``sglang.Engine``.

SGLang runs on CUDA only, so here a double stands in for the engine: it records what the backend
asks for, streams token ids the way SGLang does (incrementally, with ``incremental_streaming_output``),
runs the serialised constraint processor on random logits, and records aborts. That the arguments
are the real SGLang's is test_sglang_api.py's job; on a CUDA machine, scripts/gpu_check.sh runs the
conformance suite on the real engine.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import pickle
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import pytest_asyncio
import torch
from conformance import CompleteAfter, Conformance, tiny_spark_llm

from fasttts.backends import sglang_backend
from fasttts.backends.base import GenerationRequest
from fasttts.backends.registry import BackendConfig, create_backend
from fasttts.backends.sglang_backend import SGLangBackend, sampling_params
from fasttts.errors import InvalidRequestError, MissingExtraError, ModelLoadError


class FakeEngine:
    """Samples uniformly at random from the processed logits, one token per chunk."""

    instances: list[FakeEngine] = []

    def __init__(self, **kwargs: Any) -> None:
        self.kwargs, self.calls, self.aborted, self.closed = kwargs, [], [], False
        self.tokenizer_manager = SimpleNamespace(abort_request=self.aborted.append)
        FakeEngine.instances.append(self)

    def shutdown(self) -> None:
        self.closed = True

    async def async_generate(self, **kw: Any) -> AsyncIterator[dict[str, Any]]:
        self.calls.append(kw)
        params, rid = kw["sampling_params"], kw["rid"]
        assert json.loads(json.dumps(params)) == params  # SGLang takes JSON values only (test_sglang_api.py)
        processor = None
        if "custom_logit_processor" in kw:  # what SGLang does with it (with dill.loads)
            processor = pickle.loads(bytes.fromhex(json.loads(kw["custom_logit_processor"])["callable"]))()
        gen = torch.Generator().manual_seed(params.get("sampling_seed", 0))

        async def stream() -> AsyncIterator[dict[str, Any]]:
            req = SimpleNamespace(origin_input_ids=kw["input_ids"], output_ids=[])
            for i in range(params["max_new_tokens"]):
                if rid in self.aborted:
                    return
                logits = torch.randn(2, 1000, generator=gen)  # row 1: another request, unconstrained
                if processor is not None:
                    logits = processor(logits, [params.get("custom_params") and {**params["custom_params"], "__req__": req}, None])
                token = int(torch.multinomial(torch.softmax(logits[0], -1), 1, generator=gen))
                req.output_ids.append(token)
                last = i == params["max_new_tokens"] - 1
                yield {"output_ids": [token], "meta_info": {"finish_reason": {"type": "length"} if last else None}}
                await asyncio.sleep(0)

        return stream()


@pytest.fixture
def fake_sglang(monkeypatch: pytest.MonkeyPatch) -> type[FakeEngine]:
    FakeEngine.instances = []
    fake = SimpleNamespace(Engine=FakeEngine)
    monkeypatch.setattr(sglang_backend, "_import_sglang", lambda: fake)
    return FakeEngine


@pytest.fixture
def llm_dir(tmp_path: Path) -> Path:
    """An LLM directory as far as the backend reads it itself: config.json's vocab_size (the double's)."""
    (tmp_path / "config.json").write_text(json.dumps({"vocab_size": 1000}))
    return tmp_path


def backend_for(model_dir: Path, **kw: Any) -> SGLangBackend:
    backend = create_backend("sglang", BackendConfig(model_dir=str(model_dir), **kw))
    assert isinstance(backend, SGLangBackend)
    return backend


async def test_engine_arguments_come_from_the_backend_config(fake_sglang: type[FakeEngine], llm_dir: Path) -> None:
    backend = backend_for(llm_dir, gpu_memory_utilization=0.45, max_length=4096, batch_size=32, dtype="bfloat16", seed=7)
    await backend.start()
    args = fake_sglang.instances[0].kwargs
    assert args["mem_fraction_static"] == 0.45 and args["context_length"] == 4096 and args["max_running_requests"] == 32
    assert args["dtype"] == "bfloat16" and args["device"] == "cuda" and args["random_seed"] == 7
    assert args["model_path"] == str(llm_dir) and args["skip_tokenizer_init"] and args["incremental_streaming_output"]
    assert args["enable_custom_logit_processor"]
    await backend.shutdown()
    assert fake_sglang.instances[0].closed


async def test_the_torch_backends_int8_format_is_refused_naming_the_flag(fake_sglang: type[FakeEngine], llm_dir: Path) -> None:
    backend = backend_for(llm_dir, dtype="int8")
    with pytest.raises(ModelLoadError, match="--torch_dtype int8"):
        await backend.start()
    assert fake_sglang.instances == []  # refused before any engine was built


def test_sampling_options_map_one_to_one() -> None:
    req = GenerationRequest(prompt_ids=[1], max_tokens=50, temperature=0.7, top_k=0, top_p=0.9, repetition_penalty=1.2, seed=3)
    p = sampling_params(req)
    assert p["max_new_tokens"] == 50 and p["temperature"] == 0.7 and p["top_k"] == -1 and p["top_p"] == 0.9
    assert p["repetition_penalty"] == 1.2 and p["sampling_seed"] == 3 and p["ignore_eos"]
    assert "custom_params" not in p
    assert sampling_params(GenerationRequest(prompt_ids=[1], max_tokens=5, top_k=40))["top_k"] == 40
    assert "sampling_seed" not in sampling_params(GenerationRequest(prompt_ids=[1], max_tokens=5))


async def test_the_constraint_masks_every_step_and_stop_ids_end_the_request(fake_sglang, llm_dir: Path) -> None:
    backend = backend_for(llm_dir)
    ids = [5, 6, 7]
    lo, hi = 100, 110  # a small range the double's 1000-id vocabulary holds
    stop = 200
    req = GenerationRequest(
        prompt_ids=ids, max_tokens=40, temperature=1.0, seed=1, stop_ids=frozenset({stop}), constraint=_RangeThenStop(lo, hi, stop, after=6)
    )
    tokens = [t async for t in backend.generate(req)]
    assert all(lo <= t < hi for t in tokens[:-1]) and tokens[-1] == stop and len(tokens) == 7
    engine = fake_sglang.instances[0]
    assert engine.calls[0]["input_ids"] == ids and engine.calls[0]["custom_logit_processor"]
    assert engine.aborted == [engine.calls[0]["rid"]]  # stopped by us before SGLang's max_new_tokens: aborted
    assert backend.num_active == 0


async def test_max_tokens_and_completion_end_the_request(fake_sglang, llm_dir: Path) -> None:
    backend = backend_for(llm_dir)
    tokens = [t async for t in backend.generate(GenerationRequest(prompt_ids=[1, 2], max_tokens=5, seed=2))]
    assert len(tokens) == 5
    assert fake_sglang.instances[0].aborted == []  # SGLang finished it itself
    done = [t async for t in backend.generate(GenerationRequest(prompt_ids=[1], max_tokens=50, constraint=CompleteAfter((0, 1000), 3)))]
    assert len(done) == 3 and fake_sglang.instances[0].aborted == [fake_sglang.instances[0].calls[1]["rid"]]


async def test_closing_the_consumer_aborts_the_request(fake_sglang, llm_dir: Path) -> None:
    backend = backend_for(llm_dir)
    gen = backend.generate(GenerationRequest(prompt_ids=[1], max_tokens=1000, request_id="r-1"))
    assert len([await anext(gen) for _ in range(3)]) == 3
    await gen.aclose()
    assert fake_sglang.instances[0].aborted == ["r-1"] and backend.num_active == 0


async def test_invalid_requests(fake_sglang, llm_dir: Path) -> None:
    backend = backend_for(llm_dir)
    with pytest.raises(InvalidRequestError, match="empty"):
        [t async for t in backend.generate(GenerationRequest(prompt_ids=[], max_tokens=4))]
    with pytest.raises(InvalidRequestError, match=r"must be in \[0, 1000\)"):  # the shared check_request
        [t async for t in backend.generate(GenerationRequest(prompt_ids=[1, 1000], max_tokens=4))]


def test_missing_sglang_names_the_extra() -> None:
    try:
        import sglang  # noqa: F401
    except ImportError:
        with pytest.raises(MissingExtraError, match=r"\.\[sglang\]"):
            create_backend("sglang", BackendConfig(model_dir="x"))
    else:
        pytest.skip("sglang is installed")


class _RangeThenStop(CompleteAfter):
    def __init__(self, lo: int, hi: int, stop: int, after: int) -> None:
        super().__init__((lo, hi), 10_000)
        self.stop, self.after = stop, after

    def allowed(self, generated):
        return ((self.stop, self.stop + 1),) if len(generated) == self.after else (self.semantic,)


def _real_sglang_on_cuda() -> bool:
    return importlib.util.find_spec("sglang") is not None and torch.cuda.is_available()


# a skip only where nothing could run it; scripts/gpu_check.sh sets FASTTTS_GPU_CHECK, so there it must run
@pytest.mark.skipif(not (_real_sglang_on_cuda() or os.environ.get("FASTTTS_GPU_CHECK")), reason="real SGLang runs on CUDA only")
class TestSGLangConformance(Conformance):
    @pytest_asyncio.fixture(scope="class", loop_scope="session")
    async def backend(self, tmp_path_factory) -> AsyncIterator[SGLangBackend]:
        config = BackendConfig(model_dir=str(tiny_spark_llm(tmp_path_factory)), dtype="bfloat16", max_length=2048,
                               batch_size=8, gpu_memory_utilization=0.3)  # fmt: skip
        backend = create_backend("sglang", config)
        assert isinstance(backend, SGLangBackend)
        await backend.start()
        yield backend
        await backend.shutdown()
