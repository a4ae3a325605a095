"""Orpheus on the tiny random model and the torch backend: prompt layout, frame grammar, every
frame out (stream == one-shot decode, one-frame segments), emotion tags, batched SNAC decoding of
concurrent streams, and clear errors for what Orpheus cannot do."""

from __future__ import annotations

import asyncio
import itertools
import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
import torch
from orpheus_frames import assert_whole_frames

from fasttts.backends.base import GenerationRequest, LLMBackend
from fasttts.backends.registry import BackendConfig
from fasttts.backends.torch_backend import TorchBackend
from fasttts.errors import InvalidRequestError, ModelLoadError, NotFoundError, UnsupportedFeatureError
from fasttts.models.orpheus.constraint import OrpheusConstraint
from fasttts.models.orpheus.engine import OrpheusEngine
from fasttts.models.orpheus.family import detect
from fasttts.models.orpheus.prompt import CODEBOOK_SIZE, FRAME_CODES, OrpheusVocab
from fasttts.models.orpheus.random_model import RELEASE_CUSTOM_TOKENS, SNAC_24KHZ, write_random_orpheus
from fasttts.models.orpheus.snac_codec import SPLICE_TOLERANCE, DecodeItem, SnacCodec, frames_to_codes, load_snac
from fasttts.models.orpheus.voices import VOICES, resolve_language
from fasttts.models.random_llm import load_tokenizer
from fasttts.params import LEVEL_TEMPO, SamplingParams, VoiceParams

amark = pytest.mark.asyncio(loop_scope="session")  # the engine fixture lives in the session loop

FRAME = 2048


class RecordingBackend(LLMBackend):
    """Passes requests to the torch backend and keeps each request's prompt and output."""

    name = "recording"

    def __init__(self, inner: LLMBackend) -> None:
        self.inner = inner
        self.requests: list[tuple[GenerationRequest, list[int]]] = []

    async def generate(self, request: GenerationRequest) -> AsyncIterator[int]:
        out: list[int] = []
        self.requests.append((request, out))
        async for token in self.inner.generate(request):
            out.append(token)
            yield token

    async def start(self) -> None:
        await self.inner.start()

    async def shutdown(self) -> None:
        await self.inner.shutdown()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return write_random_orpheus(tmp_path_factory.mktemp("orpheus") / "tiny", size="tiny", seed=3)


@pytest.fixture(scope="module")
def tokenizer(model_dir):
    return load_tokenizer(model_dir)


@pytest.fixture(scope="module")
def reference(model_dir) -> SnacCodec:
    """A second codec on its own copy of the weights (same noise seed as the engine's, 0): one-shot
    decodes without the batcher."""
    return SnacCodec(load_snac(model_dir / "snac"), noise_seed=0)


@pytest.fixture(scope="module")
async def engine(model_dir) -> AsyncIterator[OrpheusEngine]:
    backend = RecordingBackend(TorchBackend(BackendConfig(model_dir=str(model_dir), device="cpu", max_length=2048)))
    eng = OrpheusEngine.load(model_dir, llm=backend, batch_size=8, wait_timeout=0.05, detokenizer_device="cpu", seed=0)
    await eng.start()
    yield eng
    await eng.shutdown()


def assert_within_splice_bound(windowed: np.ndarray, one_shot: np.ndarray) -> None:
    """What snac_codec's docstring promises: float rounding only (SPLICE_TOLERANCE; int16 ±1 LSB)."""
    assert windowed.shape == one_shot.shape
    assert np.abs(windowed - one_shot).max() <= SPLICE_TOLERANCE
    to_int16 = lambda x: np.round(np.clip(x, -1, 1) * 32767).astype(np.int32)
    assert np.abs(to_int16(windowed) - to_int16(one_shot)).max() <= 1


def frames_of(engine: OrpheusEngine, tokens: list[int]) -> np.ndarray:
    """Audio tokens (stop token dropped) → (F, 7) codes, checking every token's band."""
    audio = [t for t in tokens if t not in engine.vocab.stop_ids]
    codes = [engine.vocab.code(t, i) for i, t in enumerate(audio)]
    assert None not in codes
    return np.asarray(codes, dtype=np.int64).reshape(-1, FRAME_CODES)


# ----------------------------------------------------------------------------- prompt and vocabulary
def test_prompt_layout(engine, tokenizer):
    ids = engine.prompt_ids("Hello there.", "tara")
    tid = tokenizer.token_to_id
    assert ids[0] == tid("<custom_token_3>")
    assert ids[1] == tid("<|begin_of_text|>")
    assert ids[-4:] == [tid("<|eot_id|>"), tid("<custom_token_4>"), tid("<custom_token_5>"), tid("<custom_token_1>")]
    body = ids[2:-4]
    assert body == tokenizer.encode("tara: Hello there.", add_special_tokens=False).ids
    assert tokenizer.decode(body) == "tara: Hello there."
    assert engine.vocab.stop_ids == {tid("<custom_token_2>"), tid("<custom_token_6>")}


def test_audio_bands_are_looked_up_by_string(engine, tokenizer):
    # the tiny tokenizer's ids differ from the release's (128256 + N), so only string lookups work
    assert tokenizer.token_to_id("<custom_token_0>") != 128256
    for position, (lo, hi) in enumerate(engine.vocab.bands):
        assert lo == tokenizer.token_to_id(f"<custom_token_{10 + CODEBOOK_SIZE * position}>")
        assert hi - lo == CODEBOOK_SIZE
        assert engine.vocab.code(lo + 17, position) == 17
        assert engine.vocab.code(lo + 17, position + 1) is None


def test_vocab_rejects_a_plain_llama_tokenizer(tokenizer):
    class Without:
        def token_to_id(self, token: str):
            return None if token == "<custom_token_5>" else tokenizer.token_to_id(token)

    with pytest.raises(ModelLoadError, match="custom_token_5"):
        OrpheusVocab.from_tokenizer(Without())


def test_constraint_allows_stops_only_at_frame_boundaries(engine):
    vocab = engine.vocab
    grammar = OrpheusConstraint(vocab)
    stops = sorted(vocab.stop_ids)
    history: list[int] = []
    for n in range(3 * FRAME_CODES + 1):
        ranges = grammar.allowed(history)
        assert list(ranges) == sorted(ranges) and all(a[1] < b[0] for a, b in itertools.pairwise(ranges))
        allowed_stop = [any(lo <= s < hi for lo, hi in ranges) for s in stops]
        assert all(allowed_stop) == (n % FRAME_CODES == 0 and n >= FRAME_CODES)
        lo, hi = vocab.bands[n % FRAME_CODES]
        assert any(r_lo <= lo and hi <= r_hi for r_lo, r_hi in ranges)
        assert sum(r_hi - r_lo for r_lo, r_hi in ranges) == CODEBOOK_SIZE + (len(stops) if all(allowed_stop) else 0)
        history.append(lo)
    assert not grammar.is_complete(history)
    assert grammar.is_complete([*history[:7], stops[0]]) and grammar.allowed([*history[:7], stops[0]]) == ()


# ----------------------------------------------------------------------------- constrained decoding
@amark
async def test_constrained_decoding_yields_whole_valid_frames(engine):
    for seed in range(3):
        sampling = SamplingParams(temperature=1.5, top_p=1.0, repetition_penalty=1.3, max_tokens=12 * FRAME_CODES + 3, seed=seed)
        request = engine._request(engine.prompt_ids("Hi.", "leah"), sampling.with_defaults(engine.default_sampling))
        assert request.max_tokens % FRAME_CODES == 0
        assert_whole_frames([t async for t in engine.backend.generate(request)], request, engine.vocab)


# ----------------------------------------------------------------------------- every frame out
@amark
async def test_stream_equals_one_shot_decode(engine, reference):
    for n_frames, seed in ((24, 1), (6, 2), (2, 3)):
        sampling = SamplingParams(max_tokens=n_frames * FRAME_CODES, seed=seed).with_defaults(engine.default_sampling)
        before = len(engine.backend.requests)
        voice = await engine._resolve_voice(VoiceParams(name="tara"))
        chunks = [c async for c in engine._segment_stream("Hello there, how are you?", voice, sampling, stream=True)]
        ((_, tokens),) = engine.backend.requests[before:]
        frames = frames_of(engine, tokens)
        assert len(frames) >= 1
        stream = np.concatenate(chunks)
        one_shot = reference.decode(frames)
        assert len(stream) == len(one_shot) == len(frames) * FRAME
        assert_within_splice_bound(stream, one_shot)
        # first and last frames included: both ends carry the one-shot audio, not silence
        assert np.abs(stream[:FRAME]).max() > 1e-3 and np.abs(stream[-FRAME:]).max() > 1e-3
        if n_frames >= 24:
            assert len(chunks) > 2 and len(chunks[0]) <= 2 * FRAME  # first audio after a few frames


@amark
async def test_non_streaming_length_is_frames_times_2048(engine, reference):
    before = len(engine.backend.requests)
    audio = await engine.speak("Hello there.", "zac", sampling=SamplingParams(max_tokens=9 * FRAME_CODES, seed=5))
    ((_, tokens),) = engine.backend.requests[before:]
    frames = frames_of(engine, tokens)
    assert len(audio) == len(frames) * FRAME
    assert np.isfinite(audio).all() and audio.std() > 1e-3
    assert_within_splice_bound(audio, reference.decode(frames))


@amark
@pytest.mark.parametrize("stream", [False, True])
async def test_one_frame_segment_gives_2048_samples(engine, stream):
    sampling = SamplingParams(max_tokens=FRAME_CODES, seed=7)
    if stream:
        audio = np.concatenate([c async for c in engine.speak_stream("Hi.", sampling=sampling)])
    else:
        audio = await engine.speak("Hi.", sampling=sampling)
    assert len(audio) == FRAME
    assert np.isfinite(audio).all() and np.abs(audio).max() > 1e-3


@amark
async def test_emotion_tags_reach_the_prompt_intact(engine, tokenizer):
    before = len(engine.backend.requests)
    await engine.speak("Hello <laugh> there, I <sigh> see.", "tara", sampling=SamplingParams(max_tokens=FRAME_CODES, seed=1))
    prompts = [tokenizer.decode(req.prompt_ids[2:-4]) for req, _ in engine.backend.requests[before:]]
    text = " ".join(prompts)
    assert prompts[0].startswith("tara: ")
    assert "<laugh>" in text and "<sigh>" in text


# ----------------------------------------------------------------------------- throughput
@amark
async def test_concurrent_streams_share_batched_snac_calls(engine, reference):
    batcher = engine.decoder_batcher
    batches0, items0 = batcher.batches_run, batcher.items_run
    before = len(engine.backend.requests)

    async def one(seed: int) -> np.ndarray:
        sampling = SamplingParams(max_tokens=8 * FRAME_CODES, seed=seed)
        return np.concatenate([c async for c in engine.speak_stream("Good morning, how are you today?", "dan", sampling=sampling)])

    audios = await asyncio.gather(*(one(100 + i) for i in range(8)))
    batches, items = batcher.batches_run - batches0, batcher.items_run - items0
    assert items > batches, f"{items} windows in {batches} batches: no batch held more than one window"
    assert len(engine.backend.requests) - before == 8
    by_seed = {req.seed: toks for req, toks in engine.backend.requests[before:]}
    for i, audio in enumerate(audios):
        frames = frames_of(engine, by_seed[100 + i])
        assert len(audio) == len(frames) * FRAME
        assert_within_splice_bound(audio, reference.decode(frames))


# ----------------------------------------------------------------------------- what Orpheus cannot do
@amark
async def test_clone_pitch_gender_are_unsupported_and_unknown_voice_is_not_found(engine):
    with pytest.raises(UnsupportedFeatureError) as err:
        await engine.clone("Hello.", b"RIFF....WAVE")
    assert err.value.param == "reference_audio"
    with pytest.raises(UnsupportedFeatureError) as err:
        await engine.speak("Hello.", "tara", pitch="high")
    assert err.value.param == "pitch"
    with pytest.raises(UnsupportedFeatureError) as err:
        await engine.speak("Hello.", gender="female")
    assert err.value.param == "gender"
    with pytest.raises(NotFoundError, match="available: tara, leah"):
        await engine.speak("Hello.", "alice")
    audio = await engine.speak("Hello.", "Tara", speed="moderate", sampling=SamplingParams(max_tokens=FRAME_CODES, seed=1))
    assert len(audio) == FRAME  # names are case-insensitive
    fast = await engine.speak("Hello.", "Tara", speed="high", sampling=SamplingParams(max_tokens=FRAME_CODES, seed=1))
    assert len(fast) == round(FRAME / LEVEL_TEMPO["high"])  # no native speed: time-stretched by the level's tempo
    assert engine.capabilities.emotion_tags and not engine.capabilities.clone and not engine.capabilities.pitch


@amark
async def test_max_tokens_below_one_frame_is_refused_before_generation(engine):
    before = len(engine.backend.requests)
    with pytest.raises(UnsupportedFeatureError, match=f"at least {FRAME_CODES}") as err:
        await engine.speak("Hello.", "tara", sampling=SamplingParams(max_tokens=FRAME_CODES - 1, seed=1))
    assert err.value.param == "max_tokens" and len(engine.backend.requests) == before


# ----------------------------------------------------------------------------- no voice: the text alone
@amark
async def test_voice_none_prompts_with_the_text_alone(engine, tokenizer):
    assert engine.list_voices()[-1] == "none"
    ids = engine.prompt_ids("Hello there.", None)
    assert ids[1:-4] == tokenizer.encode("Hello there.", add_special_tokens=True).ids  # no "tara: "
    before = len(engine.backend.requests)
    audio = await engine.speak("Hello there.", "None", sampling=SamplingParams(max_tokens=FRAME_CODES, seed=1))
    assert len(audio) == FRAME
    ((request, _),) = engine.backend.requests[before:]
    assert request.prompt_ids == ids


def test_a_model_declaring_no_voices_speaks_the_text_alone(model_dir, tmp_path):
    bare = tmp_path / "bare"
    shutil.copytree(model_dir, bare)
    config = json.loads((bare / "config.json").read_text())
    (bare / "config.json").write_text(json.dumps({**config, "voices": []}))
    eng = OrpheusEngine.load(bare, backend="torch", llm_device="cpu", detokenizer_device="cpu")
    assert eng.default_voice == "none" and eng.list_voices() == ["none"]
    assert asyncio.run(eng._resolve_voice(VoiceParams())).name is None
    with pytest.raises(NotFoundError, match="available: none"):
        asyncio.run(eng._resolve_voice(VoiceParams(name="tara")))


# ----------------------------------------------------------------------------- SNAC codec
def test_frames_map_onto_snac_layers_in_documented_order():
    frames = np.arange(14).reshape(1, 2, 7)
    l0, l1, l2 = frames_to_codes(frames)
    assert l0.tolist() == [[0, 7]]
    assert l1.tolist() == [[1, 4, 8, 11]]
    assert l2.tolist() == [[2, 3, 5, 6, 9, 10, 12, 13]]


def test_codec_matches_official_snac_and_noise_is_positional(model_dir):
    official = load_snac(model_dir / "snac")
    codec = SnacCodec(load_snac(model_dir / "snac"))
    frames = np.random.default_rng(0).integers(0, CODEBOOK_SIZE, (6, FRAME_CODES))
    first = codec.decode(frames)
    assert len(first) == 6 * FRAME and np.isfinite(first).all() and first.std() > 1e-3
    np.testing.assert_array_equal(first, codec.decode(frames))  # deterministic
    assert np.abs(first - SnacCodec(load_snac(model_dir / "snac"), noise_seed=1).decode(frames)).max() > 1e-4  # noise is live
    for model in (official, codec.model):  # without the noise term both are the same official network
        for name, param in model.named_parameters():
            if ".linear." in name and name.endswith("original0"):
                param.data.zero_()
    with torch.inference_mode():
        expected = official.decode(frames_to_codes(frames[None]))[0, 0].numpy()
    np.testing.assert_allclose(codec.decode(frames), expected, atol=1e-5)


def test_padded_batch_of_windows_equals_one_shot(model_dir):
    codec = SnacCodec(load_snac(model_dir / "snac"))
    frames = np.random.default_rng(1).integers(0, CODEBOOK_SIZE, (20, FRAME_CODES))
    full = codec.decode(frames)
    items = [
        DecodeItem(frames[0:6], 0, at_end=False),  # padded on the right
        DecodeItem(frames[4:16], 4, at_end=False),  # the longest
        DecodeItem(frames[13:20], 13, at_end=True),  # padded on the left
        DecodeItem(frames[0:3], 0, at_end=True),  # a whole (other) utterance: never padded
    ]
    calls = codec.calls
    out = codec.decode_batch(items)
    assert codec.calls - calls == 2  # one padded group + one exact-length group
    assert [len(o) for o in out] == [len(i.frames) * FRAME for i in items]
    alone = [codec.decode_batch([item])[0] for item in items]  # the same windows, unbatched
    for windows in (out, alone):  # the samples a caller keeps: the one-shot decode's, within the bound
        assert_within_splice_bound(windows[0][: 3 * FRAME], full[: 3 * FRAME])
        assert_within_splice_bound(windows[1][3 * FRAME : 9 * FRAME], full[7 * FRAME : 13 * FRAME])
        assert_within_splice_bound(windows[2][3 * FRAME :], full[16 * FRAME :])
        assert_within_splice_bound(windows[3], codec.decode(frames[0:3]))


# ----------------------------------------------------------------------------- random model, detection, language
def test_random_model_layout(model_dir, tokenizer):
    assert json.loads((model_dir / "config.json").read_text())["model_type"] == "llama"
    assert tokenizer.token_to_id(f"<custom_token_{RELEASE_CUSTOM_TOKENS - 1}>") is not None
    snac_config = json.loads((model_dir / "snac" / "config.json").read_text())
    assert {k: v for k, v in snac_config.items() if k not in ("encoder_dim", "decoder_dim")} == {
        k: v for k, v in SNAC_24KHZ.items() if k not in ("encoder_dim", "decoder_dim")
    }
    assert SNAC_24KHZ["decoder_dim"] == 1024 and SNAC_24KHZ["encoder_dim"] == 48 and SNAC_24KHZ["attn_window_size"] is None
    assert RELEASE_CUSTOM_TOKENS + 128256 == 156940


def test_detect_and_missing_files(model_dir, tmp_path):
    assert detect(model_dir)
    assert not detect(model_dir / "snac")
    assert not detect(tmp_path)
    with pytest.raises(ModelLoadError, match="not a SNAC directory"):
        load_snac(tmp_path)


def test_language_comes_from_lang_then_config_then_english(model_dir, tmp_path):
    assert resolve_language(None, model_dir) == "en"
    assert resolve_language("FR", model_dir) == "fr" and VOICES["fr"][0] == "pierre"
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama", "language": "de"}))
    assert resolve_language(None, tmp_path) == "de"
    with pytest.raises(InvalidRequestError) as err:
        resolve_language("xx", model_dir)
    assert err.value.param == "lang"


def test_load_takes_snac_path_and_lang_and_auto_engine_finds_orpheus(model_dir):
    from fasttts.models.registry import AutoEngine

    french = OrpheusEngine.load(model_dir, backend="torch", snac_path=str(model_dir / "snac"), lang="fr", llm_device="cpu", detokenizer_device="cpu")
    assert french.language == "fr" and french.default_voice == "pierre" and french.list_voices() == [*VOICES["fr"], "none"]
    auto = AutoEngine(str(model_dir), backend="torch", llm_device="cpu", detokenizer_device="cpu")
    assert isinstance(auto, OrpheusEngine) and auto.default_voice == "tara" and auto.sample_rate == 24000
    with pytest.raises(TypeError, match="no_such_setting"):
        OrpheusEngine.load(model_dir, no_such_setting=1)
