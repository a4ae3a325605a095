"""Spark-TTS end to end on a tiny random-weight model in the official layout, torch backend."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest

from fasttts import AutoEngine, SamplingParams, SplitParams
from fasttts.errors import AudioDecodeError, GenerationError, ModelLoadError, NotFoundError, UnsupportedFeatureError
from fasttts.models.spark.engine import SparkEngine
from fasttts.models.spark.tokens import NUM_GLOBAL
from fasttts.params import GENDERS, LEVELS, VoiceParams

pytestmark = pytest.mark.asyncio(loop_scope="module")

MAX = 90  # tokens per segment: random weights rarely stop on their own
HOP = 320


@pytest.fixture(scope="module")
async def engine(tiny_spark_dir):
    eng = AutoEngine(str(tiny_spark_dir), "torch", batch_size=8, wait_timeout=0.02)
    assert isinstance(eng, SparkEngine)
    await eng.start()
    yield eng
    await eng.shutdown()


def sampling(seed=1, max_tokens=MAX, **kw):
    return SamplingParams(seed=seed, max_tokens=max_tokens, **kw)


@pytest.fixture
def prompts(engine, monkeypatch) -> list[list[int]]:
    """The prompt of every request the engine makes of its backend, in order."""
    seen: list[list[int]] = []
    generate = engine.backend.generate

    def recording(request):
        seen.append(list(request.prompt_ids))
        return generate(request)

    monkeypatch.setattr(engine.backend, "generate", recording)
    return seen


def ids(engine, text: str) -> list[int]:
    return engine.tokenizer.encode(text, add_special_tokens=False).ids


def created_prompt(engine, text: str, gender: str, pitch: str = "moderate", speed: str = "moderate") -> list[int]:
    """Spark's voice-creation prompt: the task, the text, then gender, pitch and speed labels."""
    v = engine.vocab
    return [v.task_create, v.start_content, *ids(engine, text), v.end_content,
            v.start_style, v.gender0 + GENDERS.index(gender), v.pitch_label0 + LEVELS.index(pitch), v.speed_label0 + LEVELS.index(speed), v.end_style]  # fmt: skip


def cloned_prompt(engine, content: str, global_ids, semantic_ids=None) -> list[int]:
    """Spark's clone prompt: the task, transcript + text, the reference's 32 global tokens, and with
    a transcript its semantic tokens, which the model continues."""
    v = engine.vocab
    prompt = [v.task_tts, v.start_content, *ids(engine, content), v.end_content, v.start_global, *(v.global0 + g for g in global_ids), v.end_global]
    return prompt if semantic_ids is None else [*prompt, v.start_semantic, *(v.semantic0 + s for s in semantic_ids)]


async def test_created_voice_length_follows_semantic_tokens(engine):
    audio = await engine.speak("Hello there.", "female", sampling=sampling())
    # create mode spends 39 tokens on the voice (acoustic values, 32 globals, markers), the rest
    # are semantic tokens of 320 samples each, unless the model stopped early
    assert 0 < len(audio) <= (MAX - (7 + NUM_GLOBAL)) * HOP
    assert len(audio) % HOP == 0
    assert np.isfinite(audio).all() and np.abs(audio).max() > 1e-4


async def test_seed_determinism_and_seed_sensitivity(engine):
    a = await engine.speak("Same words.", "male", pitch="high", sampling=sampling(seed=5))
    b = await engine.speak("Same words.", "male", pitch="high", sampling=sampling(seed=5))
    c = await engine.speak("Same words.", "male", pitch="high", sampling=sampling(seed=6))
    np.testing.assert_array_equal(a, b)
    assert len(a) != len(c) or not np.array_equal(a, c)


async def test_streaming_equals_non_streaming(engine):
    text = "Streaming and whole files must agree."
    whole = await engine.speak(text, "female", sampling=sampling(seed=3, max_tokens=200))
    chunks = [c async for c in engine.speak_stream(text, "female", sampling=sampling(seed=3, max_tokens=200))]
    stream = np.concatenate(chunks)
    assert len(chunks) > 1, "a 3 s utterance should arrive in several chunks"
    assert len(stream) == len(whole)
    err = np.abs(stream - whole).max()
    assert err < 1e-3 * np.abs(whole).max() + 1e-5, f"stream deviates from the one-shot decode by {err}"


async def test_a_cpu_stream_decodes_little_beyond_the_one_shot_decode(engine, monkeypatch):
    # every window decodes its left context and lookahead again; on a CPU that work is taken from
    # the LLM, so chunks grow fast there: at most 2x the tokens of one decode (doubling chunks: ~2.5x)
    assert engine.codec.detokenizer_device.type == "cpu"
    decoded: list[int] = []
    detokenize = engine.detokenize

    async def counting(global_ids, tokens):
        decoded.append(len(tokens))
        return await detokenize(global_ids, tokens)

    monkeypatch.setattr(engine, "detokenize", counting)
    chunks = [c async for c in engine.speak_stream("Streaming and whole files must agree.", "female", sampling=sampling(seed=3, max_tokens=200))]
    semantic = sum(len(c) for c in chunks) // HOP
    assert semantic > 100 and len(decoded) > 1
    assert sum(decoded) <= 2 * semantic, f"{len(decoded)} windows decoded {sum(decoded)} tokens for {semantic}"


async def test_clone_with_and_without_transcript(engine, piper_speech, prompts):
    from fasttts.audio.io import load_audio

    wav, transcript = piper_speech
    global_ids, semantic_ids = (list(map(int, t)) for t in await engine.tokenize(load_audio(wav, engine.sample_rate)))
    assert len(global_ids) == NUM_GLOBAL and len(semantic_ids) > 100  # ~3 s of reference at 50 tokens/s
    text = engine.normalize("A cloned voice.")
    no_text = await engine.clone("A cloned voice.", wav, sampling=sampling())
    with_text = await engine.clone("A cloned voice.", wav, transcript, sampling=sampling())
    assert prompts == [cloned_prompt(engine, text, global_ids), cloned_prompt(engine, transcript + text, global_ids, semantic_ids)]
    assert len(no_text) > 0 and len(with_text) > 0
    assert len(no_text) % HOP == 0 and len(with_text) % HOP == 0


async def test_clone_accepts_any_common_format(engine, piper_speech):
    from fasttts.audio.encode import encode_audio
    from fasttts.audio.io import load_audio

    wav, _ = piper_speech
    audio = load_audio(wav, 44100)
    for data in (encode_audio(audio, 44100, "flac"), encode_audio(audio, 44100, "mp3"), encode_audio(audio, 44100, "opus")):
        out = await engine.clone("Format check.", data, sampling=sampling(max_tokens=20))
        assert len(out) > 0


async def test_bad_reference_audio_is_a_clear_error(engine):
    with pytest.raises(AudioDecodeError):
        await engine.clone("Hello.", b"definitely not audio", sampling=sampling())


async def test_unknown_voice_is_not_found(engine):
    with pytest.raises(NotFoundError, match="nobody"):
        await engine.speak("Hello.", "nobody", sampling=sampling())


async def test_frozen_voice_round_trips_through_json(engine):
    state = await engine.freeze_voice("narrator", VoiceParams(gender="male", pitch="low"), seed=11)
    assert state["kind"] == "frozen" and len(state["global_ids"]) == NUM_GLOBAL
    first = await engine.speak("Frozen voices sound the same.", "narrator", sampling=sampling(seed=2))
    engine.remove_voice("narrator")
    engine.load_voice("narrator", json.loads(json.dumps(state)))
    again = await engine.speak("Frozen voices sound the same.", "narrator", sampling=sampling(seed=2))
    np.testing.assert_array_equal(first, again)
    assert "narrator" in engine.list_voices()


async def test_registered_clone_needs_no_reencoding(engine, piper_speech):
    wav, transcript = piper_speech
    state = await engine.add_voice("guest", wav, transcript)
    encoder, _ = engine.batchers
    before = encoder.items_run
    await engine.speak("Registered voices reuse their tokens.", "guest", sampling=sampling(max_tokens=20))
    assert encoder.items_run == before
    assert len(state["global_ids"]) == NUM_GLOBAL and len(state["semantic_ids"]) > 0


async def test_max_tokens_below_the_voice_creation_prefix_is_refused_up_front(engine):
    # a created voice writes 39 tokens (acoustic values, 32 globals) before its first semantic one
    requests = engine.stats.requests
    with pytest.raises(UnsupportedFeatureError, match="at least 40") as err:
        await engine.speak("Too short a budget.", "female", sampling=sampling(max_tokens=39))
    assert err.value.param == "max_tokens" and engine.stats.requests == requests


async def test_no_semantic_tokens_is_retried_then_reported(engine, monkeypatch):
    async def nothing(request):  # a backend that ends a request at once (e.g. its context is full)
        return
        yield

    monkeypatch.setattr(engine.backend, "generate", nothing)
    retries = engine.stats.retries
    with pytest.raises(GenerationError, match="after a retry"):
        await engine.speak("No tokens come back.", "female", sampling=sampling())
    assert engine.stats.retries == retries + 2


async def test_eight_concurrent_requests_batch_and_complete(engine):
    texts = [f"Request number {i} speaks." for i in range(8)]
    results = await asyncio.gather(*(engine.speak(t, "female", sampling=sampling(seed=i)) for i in range(8) for t in texts[i : i + 1]))
    assert all(len(r) > 0 for r in results)
    _, decoder = engine.batchers
    assert decoder.mean_occupancy > 1, "concurrent decodes were never batched"


@pytest.mark.parametrize("sentences", [1, 6])  # one segment; several, running together
async def test_cancelling_a_stream_stops_generation(engine, sentences):
    text = " ".join(f"Cancel me half way through, sentence {i}." for i in range(sentences))
    stream = engine.speak_stream(text, "female", sampling=sampling(max_tokens=400), split=SplitParams(length_threshold=12, window_size=12))
    cancelled = engine.backend.stats.cancelled
    first = await stream.__anext__()
    assert len(first) > 0
    await stream.aclose()
    assert await engine.backend.wait_idle(timeout=60)  # the timeout only guards against a hang
    assert engine.backend.stats.cancelled > cancelled  # dropped from the batch, not run to max_tokens


async def test_event_loop_stays_responsive_while_generating(engine):
    ticks = 0

    async def ticker():
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    task = asyncio.create_task(ticker())
    await engine.speak("Keep the loop free.", "female", sampling=sampling(max_tokens=150))
    task.cancel()
    assert ticks >= 5, "the event loop was blocked during synthesis"


async def test_multi_speaker_script(engine, piper_speech, prompts):
    wav, transcript = piper_speech
    alice = await engine.add_voice("alice", wav, transcript)
    script = "Intro line. <role:alice> Hi there! <role:male,pitch=high> Hello Alice."
    intro, hi, hello = (seg.text for seg in engine.script_segments(script))
    audio = await engine.multi_speak(script, sampling=sampling(max_tokens=60))
    assert len(audio) > 0
    expected = [  # each turn in its own voice: the default created one, alice's clone, a created male voice
        created_prompt(engine, intro, "female"),
        cloned_prompt(engine, alice["reference_text"] + hi, alice["global_ids"], alice["semantic_ids"]),
        created_prompt(engine, hello, "male", pitch="high"),
    ]
    assert sorted(prompts) == sorted(expected)  # the three turns run concurrently, in any order
    with pytest.raises(NotFoundError, match="bob"):
        await engine.multi_speak("<role:alice> Hi. <role:bob> Hey.", sampling=sampling())


async def test_long_text_is_split_into_segments(engine):
    text = " ".join(f"Sentence number {i} is here." for i in range(12))
    segments = engine.segments(text, VoiceParams(name="female"), SplitParams(length_threshold=20, window_size=20))
    assert len(segments) > 1
    assert all(engine.count_tokens(s.text) <= 20 for s in segments)


async def test_float16_is_promoted_not_silent(tiny_spark_dir, caplog):
    eng = AutoEngine(str(tiny_spark_dir), "torch", torch_dtype="float16")
    assert any("float16" in r.message for r in caplog.records)
    await eng.start()
    audio = await eng.speak("Half precision.", sampling=sampling(max_tokens=50))
    assert np.isfinite(audio).all()
    assert eng.backend.weight_format == "float32"  # the promotion the warning names on CPU, not auto's pick
    await eng.shutdown()


async def test_a_release_with_a_safetensors_wav2vec2_loads_and_clones_alike(engine, tmp_path, piper_speech):
    """A tiny Spark written with the same seed whose wav2vec2 folder holds ``model.safetensors``
    (as ``save_pretrained`` writes it) encodes references exactly as the ``pytorch_model.bin`` one."""
    from fasttts.models.spark.random_model import write_random_spark

    root = write_random_spark(tmp_path / "spark-st", size="tiny", seed=0, wav2vec_weights="safetensors")
    assert (root / "wav2vec2-large-xlsr-53" / "model.safetensors").is_file()
    assert not (root / "wav2vec2-large-xlsr-53" / "pytorch_model.bin").exists()
    other = AutoEngine(str(root), "torch")
    await other.start()
    try:
        from fasttts.audio import load_audio

        reference = piper_speech[0]
        wav = load_audio(reference, 16000)
        ours, theirs = await other.tokenize(wav), await engine.tokenize(wav)
        for a, b in zip(ours, theirs):
            np.testing.assert_array_equal(a, b)
        audio = await other.clone("Cloned from a safetensors wav2vec2.", reference, sampling=sampling())
        assert len(audio) > 0 and len(audio) % HOP == 0
    finally:
        await other.shutdown()


async def test_incomplete_directory_is_a_load_error(tmp_path):
    (tmp_path / "LLM").mkdir()
    (tmp_path / "BiCodec").mkdir()
    with pytest.raises(ModelLoadError, match="missing"):
        AutoEngine(str(tmp_path))


async def test_a_created_voice_keeps_its_first_segment_voice_across_a_long_text(engine, monkeypatch):
    """Segments after the first reuse the pitch/speed values and 32 global tokens the first one wrote
    (one speaker per request), and the next request creates its voice afresh."""
    calls: list[tuple[list[int], list[int]]] = []
    generate = engine.backend.generate

    async def recording(request):
        out: list[int] = []
        calls.append((request.prompt_ids, out))
        async for token in generate(request):
            out.append(token)
            yield token

    monkeypatch.setattr(engine.backend, "generate", recording)
    v = engine.vocab
    text = " ".join(f"Sentence number {i} is here." for i in range(6))
    split = SplitParams(length_threshold=12, window_size=12)
    for _ in range(2):
        first = len(calls)
        audio = await engine.speak(text, "female", sampling=sampling(seed=4, max_tokens=50), split=split)
        assert len(audio) > 0
        requests = calls[first:]
        assert len(requests) >= 3
        (prompt0, out0), *later = requests
        assert prompt0[-1] == v.end_style  # the first segment creates the voice ...
        written = [v.start_acoustic, out0[1], out0[2], v.end_acoustic, v.start_global, *out0[5 : 5 + NUM_GLOBAL], v.end_global]
        for prompt, out in later:  # ... and every later one is told it, and writes semantics only
            assert prompt[-len(written) :] == written
            assert all(v.semantic0 <= t < v.semantic0 + 8192 or t in v.stop_ids for t in out[1:])


async def test_a_job_pins_its_created_voice_so_every_worker_speaks_with_it(engine, monkeypatch):
    from fasttts.engine.base import Segment
    from fasttts.jobs import JobSpec, pin_job_voices
    from fasttts.jobs.plan import plan_job, segment_voice

    text = " ".join(f"Sentence number {i} is here." for i in range(6))

    def spec(**sampling_kw):
        return JobSpec(
            kind="speak", text=text, voice={"name": "female"}, sampling={"max_tokens": 50, **sampling_kw}, split={"length_threshold": 12, "window_size": 12}
        )

    job = spec()
    await pin_job_voices(engine, job)
    planned, _ = plan_job(engine, job)
    assert len(planned) >= 3
    request = json.loads(json.dumps(job.to_dict()))  # through the database's JSON
    (state,) = request["pinned_voices"].values()
    assert state["kind"] == "frozen" and len(state["global_ids"]) == NUM_GLOBAL
    assert all("state" not in p.voice and segment_voice(p.voice, request).state == state for p in planned)  # tokens once, in the job

    prompts: list[list[int]] = []
    generate = engine.backend.generate

    def recording(request):
        prompts.append(request.prompt_ids)
        return generate(request)

    monkeypatch.setattr(engine.backend, "generate", recording)
    for p in reversed(planned[:2]):  # segments run alone, in any order, as workers run them
        voice = segment_voice(json.loads(json.dumps(p.voice)), request)
        assert len(await engine.synthesize_segment(Segment(p.text, voice, index=p.index), sampling(max_tokens=50))) > 0
    v = engine.vocab
    pinned = [v.start_global, *(v.global0 + g for g in state["global_ids"]), v.end_global]
    assert len(prompts) == 2 and all(prompt[-len(pinned) :] == pinned for prompt in prompts)

    seeded = [spec(seed=11), spec(seed=11)]
    for s in seeded:
        await pin_job_voices(engine, s)
    assert seeded[0].pinned_voices == seeded[1].pinned_voices != job.pinned_voices  # a seed fixes the voice
    stored = JobSpec(kind="speak", text=text, voice={"name": "narrator-fixed"})
    frozen = await engine.freeze_voice("narrator-fixed", VoiceParams(gender="male"))
    await pin_job_voices(engine, stored)
    engine.remove_voice("narrator-fixed")  # deleted after submit: the job keeps the voice's tokens
    assert list(stored.pinned_voices.values()) == [frozen]
    with pytest.raises(NotFoundError, match="narrator-fixed"):  # an unknown voice fails the submit, naming it
        await pin_job_voices(engine, JobSpec(kind="speak", text=text, voice={"name": "narrator-fixed"}))


async def test_segments_run_together_whole_or_streamed_and_agree(engine):
    text = " ".join(f"Sentence number {i} is here." for i in range(6))
    split = SplitParams(length_threshold=12, window_size=12)
    stats = engine.backend.stats
    seen = stats.max_batch
    outputs = []
    for stream in (False, True):
        stats.max_batch = 0
        try:
            chunks = [c async for c in engine.speak_stream(text, "female", sampling=sampling(seed=8, max_tokens=60), split=split, _stream=stream)]
            assert stats.max_batch >= 2  # later segments decoded in one batch, streamed or not
        finally:
            stats.max_batch = max(seen, stats.max_batch)
        outputs.append(np.concatenate(chunks))
    whole, streamed = outputs
    assert len(streamed) == len(whole)
    assert np.abs(streamed - whole).max() < 1e-3 * np.abs(whole).max() + 1e-5


async def test_a_slow_listener_holds_later_segments_back(engine, monkeypatch):
    from fasttts.engine.base import SEGMENT_CONCURRENCY

    started: list[int] = []
    finished = 0
    window_done = asyncio.Event()
    generate = engine.backend.generate

    async def recording(request):
        nonlocal finished
        started.append(len(request.prompt_ids))
        async for token in generate(request):
            yield token
        finished += 1
        if finished == SEGMENT_CONCURRENCY:
            window_done.set()

    monkeypatch.setattr(engine.backend, "generate", recording)
    text = " ".join(f"Sentence number {i} is here." for i in range(14))
    split = SplitParams(length_threshold=12, window_size=12)
    total = len(engine.segments(text, VoiceParams(name="female"), split))
    assert total > SEGMENT_CONCURRENCY
    stream = engine.speak_stream(text, "female", sampling=sampling(seed=1, max_tokens=40), split=split)
    await stream.__anext__()  # then a listener that does not read on
    await asyncio.wait_for(window_done.wait(), 120)  # every segment within reach of the one being heard ran (the timeout guards a hang)
    assert len(started) == SEGMENT_CONCURRENCY  # and no other started: nothing left could start one
    rest = [c async for c in stream]
    assert rest and len(started) == total
