"""MegaTTS3 end to end on the tiny random release (torch backend for the g2p): every stage's shapes,
determinism under a seed, stream == whole file, DiT batching across requests, bad voice inputs."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import numpy as np
import pytest
import torch

from fasttts import AutoEngine, SamplingParams
from fasttts.errors import InvalidRequestError, NotFoundError, UnsupportedFeatureError
from fasttts.models.megatts3 import frontend
from fasttts.models.megatts3.engine import MegaEngine, MegaVoice
from fasttts.models.megatts3.g2p import SIL
from fasttts.models.megatts3.pipeline import DiTItem, decode_audio, dit_inputs, sample_batch, target_durations
from fasttts.params import VoiceParams

pytestmark = pytest.mark.asyncio(loop_scope="module")

HOP = 960
TEXT = (
    "Hello there, this is a test of the duration model and the diffusion transformer together. "
    "A second sentence follows it, so that there are two segments here."
)


def sampling(seed: int = 1, **kw) -> SamplingParams:
    return SamplingParams(seed=seed, max_tokens=12, diffusion_steps=3, **kw)


@pytest.fixture(scope="module")
async def engine(tiny_mega_dir: Path, mega_voice: tuple[Path, Path]):
    eng = AutoEngine(str(tiny_mega_dir), "torch", llm_device="cpu", batch_size=8, wait_timeout=2.0)
    assert isinstance(eng, MegaEngine)
    await eng.start()
    wav, npy = mega_voice
    await eng.add_voice("ref", wav.read_bytes(), latent=npy.read_bytes())
    yield eng
    await eng.shutdown()


async def test_voice_context_has_the_release_lengths(engine: MegaEngine, mega_voice: tuple[Path, Path]) -> None:
    voice = engine._voices["ref"]
    audio = frontend.pad_reference(np.zeros(int(1.2 * 24000), np.float32), 1200)
    frames = frontend.prompt_frames(int(1.2 * 24000), 1200)
    assert len(audio) % 1200 == 0 or len(audio) % 1200 == (1199 + 12000) % 1200
    assert len(voice.phones) == len(voice.tones) == len(voice.durations) > 0
    assert sum(voice.durations) == frames and min(voice.durations) >= 0
    assert voice.latent.shape == (frames // 4, 32)
    assert np.isfinite(voice.loudness)
    again = MegaVoice.from_state(voice.to_state())
    assert again.phones == voice.phones and np.array_equal(again.latent, voice.latent)


async def test_every_stage_has_its_shapes(engine: MegaEngine) -> None:
    voice = await engine._resolve_voice(VoiceParams(name="ref"))
    phones, tones = await engine._g2p("Hello there.", sampling())
    assert phones[0] == SIL and len(phones) == len(tones) <= 13
    assert all(3 <= p <= 173 for p in phones) and all(t in (3, 4, 10, 11, 12, 13, 14, 15) for t in tones)
    codes = engine.parts.duration.predict(voice.prompt_state, torch.tensor([phones]), torch.tensor([tones]))
    assert codes.shape == (len(phones),) and int(codes[1:].min()) >= 1
    dur = target_durations(codes, phones, first=True, final=True, disturb=0.1, alpha=1.0, generator=torch.Generator().manual_seed(0))
    assert int(dur.sum()) % 8 == 0 and int(dur[0]) == 8 and 64 <= int(dur[-1]) <= 127 + 8
    latent = torch.from_numpy(voice.latent)
    inputs = dit_inputs(voice.phones, voice.tones, voice.mel2ph, phones, tones, dur, latent, 4)
    n, f = len(voice.phones) + len(phones), sum(voice.durations) + int(dur.sum())
    assert [tuple(x.shape) for x in inputs] == [(3, n), (3, n), (3, f), (3, f // 4, 32), (3, f // 4, 1)]
    assert int(inputs[0][2].unique()) == 301 and float(inputs[3][1:].abs().sum()) == 0
    item = DiTItem(*inputs, steps=2, text_weight=1.6, speaker_weight=2.5, generator=torch.Generator().manual_seed(0))
    (out,) = sample_batch(engine.parts.dit, [item])
    assert out.shape == (f // 4, 32) and torch.isfinite(out).all()
    wav = decode_audio(engine.parts.wavvae, out, latent)
    assert wav.shape == ((f // 4 - latent.shape[0]) * HOP,)


async def test_same_seed_same_audio_other_seed_other_audio(engine: MegaEngine) -> None:
    a = await engine.speak("Hello there.", "ref", sampling=sampling(3))
    b = await engine.speak("Hello there.", "ref", sampling=sampling(3))
    c = await engine.speak("Hello there.", "ref", sampling=sampling(4))
    assert len(a) > 0 and np.array_equal(a, b)
    assert len(a) != len(c) or not np.array_equal(a, c)


async def test_stream_equals_whole_file(engine: MegaEngine) -> None:
    assert len(engine.segments(TEXT, VoiceParams(name="ref"))) == 2
    whole = await engine.speak(TEXT, "ref", sampling=sampling(5))
    chunks = [c async for c in engine.speak_stream(TEXT, "ref", sampling=sampling(5))]
    assert len(chunks) >= 2
    np.testing.assert_array_equal(np.concatenate(chunks), whole)


async def test_job_segments_joined_equal_the_whole_file(engine: MegaEngine) -> None:
    """A job worker synthesises each segment alone, told its place in the job (the runner passes
    its index and count) and joined with the engine's crossfade: only the last is final, so the
    joined job is the request's audio."""
    from fasttts.jobs.assemble import Piece, join_with_cues

    segments = engine.segments(TEXT, VoiceParams(name="ref"))
    for i, seg in enumerate(segments):
        seg.extra["position"] = (i, len(segments))
    audio = [await engine.synthesize_segment(seg, sampling(5)) for seg in segments]
    joined, _ = join_with_cues([Piece(s.index, 0, s.text, a) for s, a in zip(segments, audio)], engine.sample_rate, engine.segment_crossfade_s)
    whole = await engine.speak(TEXT, "ref", sampling=sampling(5))  # its two segments share DiT forwards
    assert joined.shape == whole.shape
    np.testing.assert_allclose(joined, whole, atol=1e-5)


async def test_eight_concurrent_requests_share_dit_forwards(engine: MegaEngine) -> None:
    engine.dit_forward_rows.clear()
    results = await asyncio.gather(*(engine.speak("Hello there.", "ref", sampling=sampling(10 + i)) for i in range(8)))
    assert all(len(r) > 0 for r in results)
    assert max(engine.dit_forward_rows) == 8 * 3  # every request's three CFG rows in one forward
    alone = await engine.speak("Hello there.", "ref", sampling=sampling(13))
    np.testing.assert_allclose(alone, results[3], atol=1e-4)  # batching does not change a request


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


async def test_bad_latents_and_missing_latent_name_latent_file(engine: MegaEngine, mega_voice: tuple[Path, Path]) -> None:
    wav, npy = mega_voice
    good = np.load(npy)
    for bad in (good[:, :, :16], good.astype(np.int32), good[:, :-1], np.concatenate([good, good[:, :1]], 1)):
        with pytest.raises(InvalidRequestError) as err:
            await engine.add_voice("bad", wav.read_bytes(), latent=_npy(bad))
        assert err.value.param == "latent_file"
    with pytest.raises(UnsupportedFeatureError) as err:  # a 400: without an encoder the latent is required
        await engine.add_voice("bad", wav.read_bytes())
    assert err.value.param == "latent_file" and "latent_file" in str(err.value)
    assert "bad" not in engine.list_voices()


async def test_empty_text_and_unknown_voice(engine: MegaEngine) -> None:
    with pytest.raises(InvalidRequestError) as err:
        await engine.speak("   ", "ref")
    assert err.value.param == "text"
    with pytest.raises(NotFoundError):
        await engine.speak("Hello.", "nobody")


async def test_full_wavvae_encodes_the_reference_itself(tmp_path: Path, mega_voice: tuple[Path, Path]) -> None:
    from fasttts.models.megatts3.random_model import write_random_mega

    root = write_random_mega(tmp_path / "full-vae", size="tiny", seed=2, full_wavvae=True)
    eng = AutoEngine(str(root), "torch", llm_device="cpu")
    assert not eng.capabilities.voice_latent  # no .npy needed
    await eng.start()
    try:
        state = await eng.add_voice("enc", mega_voice[0].read_bytes())
        frames = frontend.prompt_frames(int(1.2 * 24000), 1200)
        assert state["latent_frames"] == frames // 4
        again = await eng.add_voice("enc2", mega_voice[0].read_bytes())
        assert again["latent"] == state["latent"]  # the posterior sample is seeded
        audio = await eng.speak("Hello.", "enc", sampling=sampling(2))
        assert len(audio) > 0 and np.isfinite(audio).all()
    finally:
        await eng.shutdown()
