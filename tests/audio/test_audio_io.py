"""load_audio: common containers and codecs in, float32 mono at the target rate out; bad input out."""

from __future__ import annotations

import io

import av
import numpy as np
import pytest
from audio_testutil import dominant_frequency, sine, write_with_pyav

import fasttts.audio.io as audio_io
from fasttts.audio.encode import AudioEncoder
from fasttts.audio.io import load_audio
from fasttts.errors import AudioDecodeError, PayloadTooLargeError

TARGET = 16_000
TOLERANCE_S = 0.05

# name -> (muxer, codec, rates the codec takes, layouts the encoder takes, extra options)
CODECS = {
    "wav-u8": ("wav", "pcm_u8", None, None, None),
    "wav-s16": ("wav", "pcm_s16le", None, None, None),
    "wav-s24": ("wav", "pcm_s24le", None, None, None),
    "wav-s32": ("wav", "pcm_s32le", None, None, None),
    "wav-f32": ("wav", "pcm_f32le", None, None, None),
    "flac": ("flac", "flac", None, None, None),
    "mp3": ("mp3", "libmp3lame", None, None, None),
    # FFmpeg's own Vorbis encoder (libvorbis is not built in) is experimental and stereo-only.
    "ogg-vorbis": ("ogg", "vorbis", None, ("stereo",), {"strict": "experimental"}),
    "ogg-opus": ("ogg", "libopus", (8_000, 48_000), None, None),
    "m4a-aac": ("ipod", "aac", None, None, None),
    "webm-opus": ("webm", "libopus", (8_000, 48_000), None, None),
}


def make_file(name: str, seconds: float, rate: int, layout: str) -> bytes:
    muxer, codec, _, _, options = CODECS[name]
    mono = sine(seconds, rate, freq=440.0, amp=0.4)
    channels = mono[None, :] if layout == "mono" else np.stack([mono, mono])
    return write_with_pyav(channels, rate, muxer, codec, codec_options=options)


CASES = [
    (name, rate, layout)
    for name, (_, _, rates, layouts, _) in CODECS.items()
    for rate in (8_000, 22_050, 44_100, 48_000)
    for layout in ("mono", "stereo")
    if (rates is None or rate in rates) and (layouts is None or layout in layouts)
]


@pytest.mark.parametrize(("name", "rate", "layout"), CASES)
def test_decodes_to_mono_at_target_rate(name: str, rate: int, layout: str) -> None:
    audio = load_audio(make_file(name, 1.0, rate, layout), TARGET)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert abs(len(audio) / TARGET - 1.0) <= TOLERANCE_S
    if rate > 8_000 or name.startswith(("wav", "flac")):  # low-rate lossy codecs band-limit harder
        assert abs(dominant_frequency(audio, TARGET) - 440.0) <= 3.0


def test_wav_values_survive_and_stereo_is_averaged() -> None:
    rate = 22_050
    left = sine(0.5, rate, freq=300.0, amp=0.6)
    right = sine(0.5, rate, freq=700.0, amp=0.2)
    data = write_with_pyav(np.stack([left, right]), rate, "wav", "pcm_f32le")
    audio = load_audio(data, rate)
    np.testing.assert_allclose(audio, (left + right) / 2, atol=1e-6)


def test_reads_paths(tmp_path) -> None:
    path = tmp_path / "clip.flac"
    path.write_bytes(make_file("flac", 0.5, 24_000, "mono"))
    for source in (path, str(path)):
        assert abs(len(load_audio(source, 24_000)) - 12_000) <= 1


@pytest.mark.parametrize("fmt", ["wav", "mp3", "opus", "flac", "aac"])
def test_reads_our_own_streamed_output(fmt: str) -> None:
    encoder = AudioEncoder(fmt, 24_000, streaming=True)
    audio = sine(1.0, 24_000)
    data = b"".join(encoder.encode(audio[i : i + 2_400]) for i in range(0, 24_000, 2_400)) + encoder.finish()
    assert abs(len(load_audio(data, TARGET)) / TARGET - 1.0) <= TOLERANCE_S


@pytest.mark.parametrize("seed", range(6))
def test_garbage_bytes(seed: int) -> None:
    data = np.random.default_rng(seed).bytes(int(np.random.default_rng(seed).integers(1, 50_000)))
    with pytest.raises(AudioDecodeError, match="could not decode|no audio"):
        load_audio(data, TARGET)


def test_garbage_behind_a_plausible_header() -> None:
    data = b"RIFF\xff\xff\xff\xffWAVEfmt " + np.random.default_rng(1).bytes(4_000)
    with pytest.raises(AudioDecodeError):
        load_audio(data, TARGET)


def test_empty_bytes() -> None:
    with pytest.raises(AudioDecodeError, match="empty"):
        load_audio(b"", TARGET)


@pytest.mark.parametrize(
    ("name", "keep"),
    [("flac", 0.5), ("m4a-aac", 0.5), ("mp3", 0.5), ("webm-opus", 0.5), ("flac", 60), ("ogg-opus", 100), ("wav-s16", 44)],
)
def test_truncated_files(name: str, keep: float) -> None:
    """Cut mid-stream where the format can tell (a fraction) or down to its headers (a byte count).

    Ogg and WAV cut mid-stream are valid shorter files (their length is read from what is there).
    """
    rate = 48_000 if "opus" in name else 24_000
    data = make_file(name, 2.0, rate, "mono")
    cut = data[: int(len(data) * keep)] if keep < 1 else data[: int(keep)]
    with pytest.raises(AudioDecodeError):
        load_audio(cut, TARGET)


def test_truncation_message_says_so() -> None:
    data = make_file("mp3", 2.0, 24_000, "mono")
    with pytest.raises(AudioDecodeError, match="truncated"):
        load_audio(data[: len(data) // 2], TARGET)


def test_video_only_file() -> None:
    out = io.BytesIO()
    with av.open(out, "w", format="mp4") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for i in range(5):
            frame = av.VideoFrame.from_ndarray(np.full((32, 32, 3), i * 40, np.uint8), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    with pytest.raises(AudioDecodeError, match="no audio stream"):
        load_audio(out.getvalue(), TARGET)


def test_text_file(tmp_path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("1\n00:00:01,000 --> 00:00:02,000\nnot audio at all\n\n" * 20)
    with pytest.raises(AudioDecodeError):
        load_audio(path, TARGET)


def test_missing_file(tmp_path) -> None:
    with pytest.raises(AudioDecodeError, match="cannot read"):
        load_audio(tmp_path / "nope.wav", TARGET)


def test_over_max_bytes() -> None:
    data = make_file("wav-s16", 1.0, 16_000, "mono")
    with pytest.raises(PayloadTooLargeError, match="bytes"):
        load_audio(data, TARGET, max_bytes=len(data) - 1)
    assert len(load_audio(data, TARGET, max_bytes=len(data))) == 16_000


@pytest.mark.parametrize("name", ["wav-s16", "mp3", "ogg-opus", "flac"])
def test_over_max_seconds(name: str) -> None:
    data = make_file(name, 3.0, 48_000 if "opus" in name else 16_000, "mono")
    with pytest.raises(PayloadTooLargeError, match="limit"):
        load_audio(data, TARGET, max_seconds=2.0)
    assert abs(len(load_audio(data, TARGET, max_seconds=3.0)) / TARGET - 3.0) <= TOLERANCE_S


def test_max_seconds_enforced_while_decoding(monkeypatch) -> None:
    """Without metadata the cap still holds, and decoding stops soon after the limit."""
    monkeypatch.setattr(audio_io, "_declared_seconds", lambda container, stream: None)
    decoded_samples = 0
    real_resampler = av.AudioResampler

    class CountingResampler:
        def __init__(self, **kwargs) -> None:
            self._inner = real_resampler(**kwargs)

        def resample(self, frame):
            nonlocal decoded_samples
            decoded_samples += frame.samples if frame is not None else 0
            return self._inner.resample(frame)

    monkeypatch.setattr(audio_io.av, "AudioResampler", CountingResampler)
    data = make_file("flac", 30.0, 16_000, "mono")
    with pytest.raises(PayloadTooLargeError, match="longer than"):
        load_audio(data, TARGET, max_seconds=2.0)
    assert decoded_samples < 3 * 16_000  # stopped just past the 2 s cap, not after all 30 s


def test_non_finite_float_samples_become_silence() -> None:
    samples = sine(0.2, 16_000)
    samples[100:110] = np.nan
    samples[200] = np.inf
    audio = load_audio(write_with_pyav(samples[None, :], 16_000, "wav", "pcm_f32le"), 16_000)
    assert np.isfinite(audio).all()
    assert (audio[100:110] == 0).all() and audio[200] == 0


@pytest.mark.parametrize("name", list(CODECS))
def test_corrupted_files_decode_or_fail_cleanly(name: str) -> None:
    """Random byte damage and cuts: either finite float32 mono audio or AudioDecodeError."""
    rng = np.random.default_rng(sum(map(ord, name)))
    pristine = make_file(name, 1.0, 48_000 if "opus" in name else 24_000, "stereo" if "vorbis" in name else "mono")
    for trial in range(10):
        damaged = bytearray(pristine)
        for position in rng.integers(0, len(damaged), int(rng.integers(1, 40))):
            damaged[int(position)] = int(rng.integers(0, 256))
        if trial % 3 == 0:
            damaged = damaged[: int(rng.integers(1, len(damaged)))]
        try:
            audio = load_audio(bytes(damaged), TARGET, max_seconds=60)
        except AudioDecodeError:
            continue
        assert audio.dtype == np.float32 and audio.ndim == 1 and np.isfinite(audio).all()


HOSTILE_CHILD = """
import json, sys
from hostile_audio import hostile
from fasttts.audio.io import load_audio
from fasttts.errors import FastTTSError
for name, data in hostile().items():
    print(json.dumps({"case": name}), flush=True)  # the last case printed is the one that crashed
    try:
        audio = load_audio(data, 16000, max_seconds=30, max_bytes=20 << 20)
        result = {"ok": [audio.dtype.name, audio.ndim, len(audio), bool((abs(audio) < 4).all())]}
    except FastTTSError as exc:
        result = {"error": type(exc).__name__, "param": exc.param, "message": exc.message}
    print(json.dumps(result), flush=True)
"""


def test_hostile_files_never_crash_the_process() -> None:
    """Many channels, odd sample formats, absurd rates, zero-length and lying headers: decoded in a
    child process, so a crash (PyAV's SIGSEGV on planar audio with 8+ channels) fails this test
    naming the case instead of killing the run."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    from hostile_audio import DECODABLE, REFUSED, hostile

    tests_dir = str(Path(__file__).parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([tests_dir, os.environ.get("PYTHONPATH", "")])}
    child = subprocess.run([sys.executable, "-c", HOSTILE_CHILD], capture_output=True, text=True, env=env, timeout=240)
    lines = [json.loads(line) for line in child.stdout.splitlines()]
    last = lines[-1].get("case") if lines else None
    assert child.returncode == 0, f"decoding {last!r} killed the process ({child.returncode}): {child.stderr[-800:]}"
    results = {case["case"]: outcome for case, outcome in zip(lines[::2], lines[1::2])}
    assert set(results) == set(hostile())
    for name, outcome in results.items():
        if name in DECODABLE:
            assert outcome.get("ok", [None])[:2] == ["float32", 1] and outcome["ok"][2] > 0 and outcome["ok"][3], (name, outcome)
        if name in REFUSED:
            assert outcome.get("error") == "AudioDecodeError" and outcome["param"] == "audio", (name, outcome)
    assert "17 channels" in results["wav-17ch"]["message"] and "1 Hz" in results["wav-rate-1"]["message"]


def test_eight_channels_are_averaged_to_mono() -> None:
    """Each of eight channels holds its own constant: the mono result is their mean."""
    from hostile_audio import wav

    levels = np.arange(1, 9, dtype=np.int16) * 1000
    payload = np.tile(levels, 800).astype("<i2").tobytes()  # 800 interleaved frames
    audio = load_audio(wav(8, payload=payload), 16_000)
    np.testing.assert_allclose(audio, levels.mean() / 32768, atol=1e-4)
