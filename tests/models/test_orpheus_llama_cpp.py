"""Orpheus's frame grammar on the llama-cpp backend: whole frames of in-band SNAC codes, and audio
of exactly frames × 2048 samples, from the tiny random model converted to GGUF."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("llama_cpp")

from orpheus_frames import assert_whole_frames

from fasttts.models.gguf import find_converter, write_gguf
from fasttts.models.orpheus.engine import OrpheusEngine
from fasttts.models.orpheus.prompt import FRAME_CODES
from fasttts.models.orpheus.random_model import write_random_orpheus
from fasttts.params import SamplingParams

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow]


@pytest.fixture(scope="module")
async def engine(tmp_path_factory):
    try:
        find_converter(None)
    except Exception as exc:
        pytest.skip(f"llama.cpp's converter is not available: {exc}")
    model_dir = write_random_orpheus(tmp_path_factory.mktemp("orpheus-gguf") / "tiny", size="tiny", seed=5)
    write_gguf(model_dir, "F16")
    eng = OrpheusEngine.load(model_dir, backend="llama-cpp", detokenizer_device="cpu", batch_size=4)
    await eng.start()
    yield eng
    await eng.shutdown()


@pytest.mark.parametrize("seed", [0, 1, 2])
async def test_whole_valid_frames_on_llama_cpp(engine, seed):
    sampling = SamplingParams(temperature=1.5, top_p=1.0, max_tokens=10 * FRAME_CODES + 4, seed=seed)
    request = engine._request(engine.prompt_ids("Hi <laugh> there.", "tara"), sampling.with_defaults(engine.default_sampling))
    assert_whole_frames([t async for t in engine.backend.generate(request)], request, engine.vocab)


async def test_audio_is_frames_times_2048_samples(engine):
    audio = await engine.speak("Hello there.", "tara", sampling=SamplingParams(max_tokens=6 * FRAME_CODES, seed=3))
    assert len(audio) > 0 and len(audio) % 2048 == 0 and np.isfinite(audio).all()
