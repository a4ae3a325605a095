"""MegaTTS3's g2p: a Qwen2 causal LM that writes merged phone ids after ``<BOT>`` text ``<BOS>``.

Equal to ``g2p`` of ``tts/frontend_function.py`` and ``split_ph`` of
``tts/utils/text_utils/ph_tone_convert.py``, with two deliberate differences: decoding is plainly
greedy (the reference "samples" with top-k 1, which only consumes random numbers), and a
:class:`TokenConstraint` keeps the output to merged ids that split into a real phone and tone (the
reference lets an untrained or unlucky model emit ids that split into ``<UNK>`` or crash the
duration LM's 174-row table). Every id is looked up by string.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fasttts.backends.base import GenerationRequest, Ranges, TokenConstraint, merge_ranges

if TYPE_CHECKING:
    from tokenizers import Tokenizer

SIL = 145
"""The ``sil`` phone: it seeds the output and is kept as the first phone."""
PHONE_END = 174
"""Phone ids 3…173 are real symbols (0–2 are ``<pad>``, ``<EOS>``, ``<UNK>``)."""
MERGED_ZH = (201, 789)
"""Chinese phone × tone ids: 200 + 6·(p − 3) + c for phones 3…100 and tone classes 1…6."""
G2P_EOS = 801
MAX_NEW_TOKENS = 256
SPEECH_SPAN = 802
"""Offsets 0…801 from ``<Reserved_TTS_0>`` must exist in the vocabulary."""


def split_merged(merged: Sequence[int]) -> tuple[list[int], list[int]]:
    """Merged ids → (phone ids, tone ids) (``split_ph``): Chinese ids carry a tone class, every
    other id is a phone with tone 3 (non-tonal)."""
    phones, tones = [], []
    for m in merged:
        if MERGED_ZH[0] - 1 <= m < MERGED_ZH[1]:
            p, c = (m - 201) // 6 + 3, (m - 201) % 6 + 1
            phones.append(p)
            tones.append(4 if c == 1 else c + 9)
        else:
            phones.append(int(m))
            tones.append(3)
    return phones, tones


@dataclass(frozen=True)
class G2PVocab:
    """The g2p tokenizer's ids the pipeline needs, found by string."""

    bot: int
    bos: int
    speech0: int

    @classmethod
    def from_tokenizer(cls, tokenizer: Tokenizer) -> G2PVocab:
        from fasttts.errors import ModelLoadError
        from fasttts.models.random_llm import token_id

        vocab = cls(token_id(tokenizer, "<BOT>"), token_id(tokenizer, "<BOS>"), token_id(tokenizer, "<Reserved_TTS_0>"))
        size = tokenizer.get_vocab_size(with_added_tokens=True)
        if vocab.speech0 + SPEECH_SPAN > size:
            raise ModelLoadError(f"the g2p tokenizer needs {SPEECH_SPAN} ids from <Reserved_TTS_0> ({vocab.speech0}); it has {size}")
        return vocab

    @property
    def eos(self) -> int:
        return self.speech0 + G2P_EOS

    def prompt(self, text_ids: Sequence[int]) -> list[int]:
        """``<BOT>`` text ``<BOS>`` then the seeded ``sil`` (text ids from encoding the whole
        string, so ``<BOT>``/``<BOS>`` are already the first and last)."""
        return [*text_ids, self.speech0 + SIL]

    def request(self, text_ids: Sequence[int], *, max_tokens: int = MAX_NEW_TOKENS, seed: int | None = None) -> GenerationRequest:
        """What every backend is asked for one text: greedy (temperature 0, top-k 1: each engine
        maps these to its own greedy), at most ``MAX_NEW_TOKENS``, ending at the g2p EOS, under the
        phone constraint."""
        return GenerationRequest(
            prompt_ids=self.prompt(text_ids),
            max_tokens=min(max_tokens, MAX_NEW_TOKENS),
            temperature=0.0,
            top_k=1,
            stop_ids=frozenset({self.eos}),
            seed=seed,
            constraint=PhoneConstraint(self),
        )

    def merged(self, generated: Sequence[int]) -> list[int]:
        """Generated ids → merged ids, the seeded ``sil`` first, EOS dropped."""
        return [SIL, *(t - self.speech0 for t in generated if t != self.eos)]


class PhoneConstraint(TokenConstraint):
    """Phones 3…173, Chinese merged ids 201…788, or EOS; EOS ends the grammar."""

    def __init__(self, vocab: G2PVocab) -> None:
        s = vocab.speech0
        self.eos = vocab.eos
        self._ranges: Ranges = merge_ranges([(s + 3, s + PHONE_END), (s + MERGED_ZH[0], s + MERGED_ZH[1]), (s + G2P_EOS, s + G2P_EOS + 1)])

    def allowed(self, generated: Sequence[int]) -> Ranges | None:
        return self._ranges

    def is_complete(self, generated: Sequence[int]) -> bool:
        return bool(generated) and generated[-1] == self.eos

    def vocabulary(self) -> Ranges | None:
        return self._ranges
