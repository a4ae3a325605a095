"""Orpheus's prompt layout and audio-token vocabulary, every id looked up by its token string.

The fine-tuned ("ft") checkpoints were trained on one turn of a chat-like layout:

    <custom_token_3>  tokenizer("{voice}: {text}")  <|eot_id|>  <custom_token_4> <custom_token_5> <custom_token_1>
    start-of-human    (begins with <|begin_of_text|>) end-of-turn end-of-human    start-of-AI      start-of-speech

and answer with audio tokens until end-of-speech ``<custom_token_2>`` or end-of-AI
``<custom_token_6>``. Audio token number ``i`` (counting audio tokens only) is
``<custom_token_{10 + 4096·(i mod 7) + code}>``: each of the 7 positions of a SNAC frame has its
own band of 4096 tokens.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fasttts.errors import ModelLoadError

START_OF_HUMAN = "<custom_token_3>"
END_OF_TURN = "<|eot_id|>"
END_OF_HUMAN = "<custom_token_4>"
START_OF_AI = "<custom_token_5>"
START_OF_SPEECH = "<custom_token_1>"
END_OF_SPEECH = "<custom_token_2>"
END_OF_AI = "<custom_token_6>"
BEGIN_OF_TEXT = "<|begin_of_text|>"

FRAME_CODES = 7
"""Audio tokens per SNAC frame (1 + 2 + 4 codes of the three layers)."""
CODEBOOK_SIZE = 4096
AUDIO_OFFSET = 10
"""``<custom_token_0..9>`` are control tokens; audio codes start at ``<custom_token_10>``."""
NUM_CUSTOM_TOKENS = AUDIO_OFFSET + FRAME_CODES * CODEBOOK_SIZE
"""Custom tokens a checkpoint needs at least: the control tokens and every band."""


def audio_token(position: int, code: int) -> str:
    """The token string of ``code`` at frame position ``position`` (0..6)."""
    return f"<custom_token_{AUDIO_OFFSET + CODEBOOK_SIZE * position + code}>"


def _lookup(tokenizer: Any, token: str) -> int:
    token_id = tokenizer.token_to_id(token)
    if token_id is None:
        raise ModelLoadError(f"not an Orpheus tokenizer: it has no token {token!r}")
    return int(token_id)


@dataclass(frozen=True)
class OrpheusVocab:
    """The ids Orpheus's prompt and output use, resolved once from a ``tokenizers.Tokenizer``."""

    start_of_human: int
    end_of_turn: int
    end_of_human: int
    start_of_ai: int
    start_of_speech: int
    end_of_speech: int
    end_of_ai: int
    begin_of_text: int
    bands: tuple[tuple[int, int], ...]
    """Per frame position, the half-open id range ``[lo, lo + 4096)`` of its codes."""

    @classmethod
    def from_tokenizer(cls, tokenizer: Any) -> OrpheusVocab:
        bands = []
        for position in range(FRAME_CODES):
            lo = _lookup(tokenizer, audio_token(position, 0))
            hi = _lookup(tokenizer, audio_token(position, CODEBOOK_SIZE - 1)) + 1
            if hi - lo != CODEBOOK_SIZE:
                # a band must be contiguous so a code is ``id - lo``; check both ends and the middle
                raise ModelLoadError(f"Orpheus audio tokens of position {position} are not contiguous ids ({lo}..{hi - 1})")
            if _lookup(tokenizer, audio_token(position, CODEBOOK_SIZE // 2)) != lo + CODEBOOK_SIZE // 2:
                raise ModelLoadError(f"Orpheus audio tokens of position {position} are not contiguous ids")
            bands.append((lo, hi))
        return cls(
            start_of_human=_lookup(tokenizer, START_OF_HUMAN),
            end_of_turn=_lookup(tokenizer, END_OF_TURN),
            end_of_human=_lookup(tokenizer, END_OF_HUMAN),
            start_of_ai=_lookup(tokenizer, START_OF_AI),
            start_of_speech=_lookup(tokenizer, START_OF_SPEECH),
            end_of_speech=_lookup(tokenizer, END_OF_SPEECH),
            end_of_ai=_lookup(tokenizer, END_OF_AI),
            begin_of_text=_lookup(tokenizer, BEGIN_OF_TEXT),
            bands=tuple(bands),
        )

    @property
    def stop_ids(self) -> frozenset[int]:
        return frozenset({self.end_of_speech, self.end_of_ai})

    def code(self, token_id: int, index: int) -> int | None:
        """SNAC code of output audio token number ``index``, or None if it is not in its band."""
        lo, hi = self.bands[index % FRAME_CODES]
        return token_id - lo if lo <= token_id < hi else None


def build_prompt(tokenizer: Any, vocab: OrpheusVocab, voice: str | None, text: str) -> list[int]:
    """Prompt ids for ``voice`` speaking ``text`` (inline emotion tags stay plain text); with
    ``voice`` None the text alone, as the reference prompts the pretrained checkpoint."""
    body = list(tokenizer.encode(text if voice is None else f"{voice}: {text}", add_special_tokens=True).ids)
    if not body or body[0] != vocab.begin_of_text:  # a tokenizer.json without Llama-3's BOS post-processor
        body.insert(0, vocab.begin_of_text)
    return [vocab.start_of_human, *body, vocab.end_of_turn, vocab.end_of_human, vocab.start_of_ai, vocab.start_of_speech]
