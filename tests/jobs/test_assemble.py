"""A job's chapters are joined each on its own and laid back to back: the whole file is the chapter
files concatenated, with every subtitle cue over its own segment's audio."""

from __future__ import annotations

import numpy as np

from fasttts.jobs.assemble import Piece, join_chapters, join_with_cues

RATE = 1000


def _pieces() -> list[Piece]:
    """Segments of constant levels (1, 2, 3, ...), in two chapters, given out of order."""
    lengths = [(0, 300), (0, 250), (1, 400), (1, 120), (1, 200)]
    pieces = [Piece(i, c, f"s{i}", np.full(n, i + 1, np.float32)) for i, (c, n) in enumerate(lengths)]
    return pieces[::-1]


def test_chapters_are_joined_alone_and_laid_back_to_back() -> None:
    pieces = _pieces()
    audio, cues = join_chapters(pieces, 2, RATE, crossfade_s=0.05)
    for c in (0, 1):  # a chapter ends as a request of its own segments does: no crossfade into the next
        alone, _ = join_with_cues(sorted((p for p in pieces if p.chapter == c), key=lambda p: p.index), RATE, 0.05)
        np.testing.assert_array_equal(audio[c], alone)
    assert len(audio[0]) == 300 + 250 - 50 and audio[0][-1] == 2 and audio[1][0] == 3
    whole = np.concatenate(audio)
    assert [q.text for q in cues] == ["s0", "s1", "s2", "s3", "s4"]
    for i, q in enumerate(cues):  # the middle of each cue is its own segment, past any blend
        assert whole[int((q.start_s + q.end_s) / 2 * RATE)] == i + 1
    assert cues[2].start_s == len(audio[0]) / RATE and cues[-1].end_s == len(whole) / RATE


def test_a_chapter_without_segments_is_empty_audio() -> None:
    audio, cues = join_chapters([Piece(0, 1, "only", np.ones(10, np.float32))], 3, RATE)
    assert [len(a) for a in audio] == [0, 10, 0]
    assert (cues[0].start_s, cues[0].end_s) == (0.0, 0.01)
