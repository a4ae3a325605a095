"""The property every Orpheus backend test checks of a generated token stream."""

from __future__ import annotations

from collections.abc import Sequence

from fasttts.backends.base import GenerationRequest
from fasttts.models.orpheus.prompt import FRAME_CODES, OrpheusVocab


def assert_whole_frames(tokens: Sequence[int], request: GenerationRequest, vocab: OrpheusVocab) -> None:
    """Whole SNAC frames of codes each in its position's band, and a stop token only at the end."""
    audio = [t for t in tokens if t not in request.stop_ids]
    assert audio and len(audio) % FRAME_CODES == 0, len(audio)
    assert all(t not in request.stop_ids for t in tokens[:-1])
    for i, token in enumerate(audio):
        lo, hi = vocab.bands[i % FRAME_CODES]
        assert lo <= token < hi, (i, token)
