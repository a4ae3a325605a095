"""ChunkedDecoder: chunked decoding equals a one-shot decode, with exact total length."""

import numpy as np
import pytest

from fasttts.audio.crossfade import SegmentJoiner
from fasttts.engine.streaming import ChunkedDecoder

HOP = 40
KERNEL = np.random.default_rng(0).standard_normal(7 * HOP).astype(np.float32) / 20  # receptive field ±3.5 tokens


def conv_decode(tokens):
    """A stand-in codec with a finite receptive field: upsample token values, convolve."""
    x = np.repeat(np.sin(np.asarray(tokens, dtype=np.float32)), HOP)
    start = len(KERNEL) // 2
    return np.convolve(x, KERNEL, mode="full")[start : start + len(x)].astype(np.float32)


async def _adecode(tokens):
    return conv_decode(tokens)


@pytest.mark.parametrize("n_tokens", [1, 3, 17, 50, 333])
@pytest.mark.parametrize("push_size", [1, 7])
async def test_stream_equals_one_shot_decode(n_tokens, push_size):
    tokens = list(np.random.default_rng(n_tokens).integers(0, 1000, n_tokens))
    decoder = ChunkedDecoder(_adecode, hop=HOP, first_chunk=5, max_chunk=40, left_context=8, lookahead=8, crossfade=HOP)
    chunks = []
    for i in range(0, n_tokens, push_size):
        chunks += await decoder.push(tokens[i : i + push_size])
    chunks += await decoder.flush()
    stream = np.concatenate(chunks)
    full = conv_decode(tokens)
    assert len(stream) == n_tokens * HOP == decoder.samples_out
    np.testing.assert_allclose(stream, full, atol=1e-5)


async def test_first_chunk_comes_early_and_chunks_grow():
    decoder = ChunkedDecoder(_adecode, hop=HOP, first_chunk=4, max_chunk=32, left_context=8, lookahead=2, crossfade=HOP)
    sizes = []
    for t in range(200):
        for chunk in await decoder.push([t]):
            sizes.append((t + 1, len(chunk)))
    first_ready_after, _ = sizes[0]
    assert first_ready_after == 4 + 2  # first chunk + lookahead tokens
    lengths = [n for _, n in sizes]
    assert lengths[1] > lengths[0] and max(lengths) <= 32 * HOP


async def test_too_little_context_still_gives_exact_length_and_close_audio():
    tokens = list(range(120))
    decoder = ChunkedDecoder(_adecode, hop=HOP, first_chunk=5, max_chunk=20, left_context=1, lookahead=1, crossfade=HOP // 2)
    chunks = [c for t in tokens for c in await decoder.push([t])] + await decoder.flush()
    stream, full = np.concatenate(chunks), conv_decode(tokens)
    assert len(stream) == len(full)
    snr = 10 * np.log10(np.sum(full**2) / np.sum((stream - full) ** 2))
    assert snr > 10  # degraded, but the crossfade keeps it close


def test_crossfade_wider_than_lookahead_is_refused():
    with pytest.raises(ValueError):
        ChunkedDecoder(_adecode, hop=HOP, first_chunk=5, max_chunk=20, left_context=1, lookahead=1, crossfade=HOP + 1)


def test_segment_joiner_keeps_everything_but_the_overlaps():
    rng = np.random.default_rng(1)
    pieces = [rng.standard_normal(n).astype(np.float32) for n in (500, 37, 1200, 3)]
    j = SegmentJoiner(64)
    joined = np.concatenate([j.push(p) for p in pieces] + [j.flush()])
    total = sum(map(len, pieces))
    assert total - 3 * 64 <= len(joined) < total  # each of the 3 joins overlaps by at most 64
    np.testing.assert_array_equal(joined[: 500 - 64], pieces[0][: 500 - 64])  # untouched far from a join
    np.testing.assert_array_equal(joined[-1:], pieces[-1][-1:])
    # joining pieces that agree in the overlap changes nothing (raised-cosine fades sum to one)
    signal = rng.standard_normal(1000).astype(np.float32)
    j = SegmentJoiner(50)
    out = np.concatenate([j.push(signal[:550]), j.push(signal[500:]), j.flush()])
    np.testing.assert_allclose(out, signal, atol=1e-6)
