"""The grammar of Orpheus's answer: whole SNAC frames of in-band codes, then a stop token.

Audio token ``i`` may only be a code of frame position ``i mod 7`` (its band of 4096 ids), and
the stop tokens may only come at a frame boundary after at least one frame. Every backend
applies it at every step, so whatever the weights (random test models included) the output
always decodes into whole frames and nothing is thrown away.
"""

from __future__ import annotations

from collections.abc import Sequence

from fasttts.backends.base import Ranges, TokenConstraint, merge_ranges
from fasttts.models.orpheus.prompt import FRAME_CODES, OrpheusVocab


class OrpheusConstraint(TokenConstraint):
    """Stateless: the allowed set depends only on ``len(generated)`` (and on a stop at the end)."""

    def __init__(self, vocab: OrpheusVocab) -> None:
        self.stop_ids = vocab.stop_ids
        self._bands: tuple[Ranges, ...] = tuple(merge_ranges([band]) for band in vocab.bands)
        self._boundary: Ranges = merge_ranges([vocab.bands[0], *((s, s + 1) for s in self.stop_ids)])

    def allowed(self, generated: Sequence[int]) -> Ranges | None:
        n = len(generated)
        if n and generated[-1] in self.stop_ids:
            return ()
        if n % FRAME_CODES == 0 and n >= FRAME_CODES:
            return self._boundary
        return self._bands[n % FRAME_CODES]

    def is_complete(self, generated: Sequence[int]) -> bool:
        return bool(generated) and generated[-1] in self.stop_ids

    def vocabulary(self) -> Ranges:
        return merge_ranges([*(r for band in self._bands for r in band), *self._boundary])
