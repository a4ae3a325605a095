"""Turning a growing token sequence into audio chunks as early as possible.

A codec decoder maps ``n`` tokens to ``n * hop`` samples, but each output sample depends on a
window of neighbouring tokens. :class:`ChunkedDecoder` decodes windows that include
``left_context`` tokens before and ``lookahead`` tokens after the part it emits, then crossfades
consecutive chunks over ``crossfade`` samples. With contexts at least as wide as the decoder's
receptive field, the concatenated chunks equal a one-shot decode of all tokens (within the
crossfade), the first and last tokens included; the total length is always exactly ``n * hop``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

import numpy as np

from fasttts.audio.crossfade import blend

DecodeFn = Callable[[Sequence[int]], Awaitable[np.ndarray]]


class ChunkedDecoder:
    """Incremental decode of a token stream into audio chunks.

    ``decode`` turns a list of tokens (or frames) into ``len(tokens) * hop`` samples.
    The first chunk covers ``first_chunk`` tokens; each later chunk is ``growth`` times longer, up
    to ``max_chunk`` — small chunks first for early audio, larger ones later for throughput.
    """

    def __init__(
        self,
        decode: DecodeFn,
        *,
        hop: int,
        first_chunk: int,
        max_chunk: int,
        left_context: int,
        lookahead: int,
        crossfade: int,
        growth: float = 2.0,
    ) -> None:
        if crossfade > lookahead * hop:
            raise ValueError("crossfade must fit inside the lookahead")
        self._decode = decode
        self.hop = hop
        self.left_context = left_context
        self.lookahead = lookahead
        self.crossfade = crossfade
        self.max_chunk = max(1, max_chunk)
        self.growth = growth
        self._chunk = max(1, min(first_chunk, self.max_chunk))
        self._tokens: list[int] = []
        self._emitted = 0  # tokens whose audio (minus the held tail) has been emitted
        self._tail = np.zeros(0, dtype=np.float32)
        self.samples_out = 0

    @property
    def tokens(self) -> list[int]:
        return self._tokens

    async def push(self, new_tokens: Sequence[int]) -> list[np.ndarray]:
        """Add tokens; return the chunks that became ready (possibly none)."""
        self._tokens.extend(new_tokens)
        chunks = []
        while len(self._tokens) - self._emitted - self.lookahead >= self._chunk:
            end = self._emitted + self._chunk
            chunks.append(await self._emit(end, final=False))
            self._chunk = min(self.max_chunk, max(self._chunk + 1, int(self._chunk * self.growth)))
        return chunks

    async def flush(self) -> list[np.ndarray]:
        """Emit everything that is left (call once, after the last token)."""
        if self._emitted >= len(self._tokens) and not len(self._tail):
            return []
        if self._emitted >= len(self._tokens):
            tail, self._tail = self._tail, np.zeros(0, dtype=np.float32)
            self.samples_out += len(tail)
            return [tail]
        return [await self._emit(len(self._tokens), final=True)]

    async def _emit(self, end: int, *, final: bool) -> np.ndarray:
        start = max(0, self._emitted - self.left_context)
        stop = len(self._tokens) if final else min(len(self._tokens), end + self.lookahead)
        audio = np.asarray(await self._decode(self._tokens[start:stop]), dtype=np.float32).reshape(-1)
        lo = (self._emitted - start) * self.hop
        hi = (end - start) * self.hop + (0 if final else self.crossfade)
        piece = audio[lo:hi]
        if len(self._tail):
            n = len(self._tail)
            piece = np.concatenate([blend(self._tail, piece[:n]), piece[n:]])
        if final:
            out, self._tail = piece, np.zeros(0, dtype=np.float32)
        else:
            cut = len(piece) - self.crossfade
            out, self._tail = piece[:cut], piece[cut:].copy()
        self._emitted = end
        self.samples_out += len(out)
        return out
