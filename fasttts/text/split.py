"""Cut long text into segments the TTS model can speak in one go, counted in LLM tokens.

The splitter walks down a ladder of boundaries — sentences, then clauses (commas), then words
(whitespace), then characters — only as far as a piece is still longer than the window, and
greedily packs neighbouring pieces into segments of at most ``window_size`` tokens.

Counting is linear: every piece is counted once (pieces are cut so their trailing whitespace
travels with them, which makes sums of piece counts match the joined text for additive counters
such as words or characters), and each packed segment is checked once more against the real
counter because BPE tokenizers are only roughly additive. Character-level cuts (CJK runs, very
long words) gallop then binary-search for the longest prefix that fits, so even a 50k-character
run costs O(log) counts per segment. Inline tags (``<laugh>``, ``<role:...>``) are masked out
before any boundary is searched for, so no cut ever lands inside one.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable

from fasttts.text.tags import TAG_RE

_CLOSERS = "\"'”’)\\]」』）"
_BOUNDARIES: tuple[re.Pattern[str], ...] = (
    # Sentences: . ! ? ; … before whitespace (so 3.14 and e.g.x stay whole), CJK 。！？； anywhere, newlines.
    re.compile(rf"(?:[.!?;…]+[{_CLOSERS}]*(?=\s|$)|[。！？；]+[{_CLOSERS}]*)\s*|\n\s*"),
    # Clauses: , : before whitespace (so 1,000 and 3:45 stay whole), CJK ，、： anywhere.
    re.compile(rf"(?:[,:][{_CLOSERS}]*(?=\s)|[，、：])\s*"),
    # Words.
    re.compile(r"\s+"),
)
_ATOM_RE = re.compile(TAG_RE.pattern + r"|.", re.DOTALL)


def _closes(atom: str) -> bool:
    return len(atom) == 1 and unicodedata.category(atom) in ("Po", "Pe", "Pf")


def _mask_tags(text: str) -> str:
    """Same length as ``text`` with every tag blanked to ``_``, so no boundary is found inside one."""
    return TAG_RE.sub(lambda m: "_" * len(m.group()), text)


def _cut(text: str, masked: str, boundary: re.Pattern[str]) -> list[tuple[str, str]]:
    """Pieces (with their masks) ending after each boundary; they concatenate back to ``text``."""
    pieces, pos = [], 0
    for match in boundary.finditer(masked):
        if match.end() > pos:
            pieces.append((text[pos : match.end()], masked[pos : match.end()]))
            pos = match.end()
    if pos < len(text):
        pieces.append((text[pos:], masked[pos:]))
    return pieces


class _Splitter:
    def __init__(self, count_tokens: Callable[[str], int], window: int) -> None:
        self.count = count_tokens
        self.window = window

    def fits(self, pieces: list[str]) -> bool:
        return self.count("".join(pieces).strip()) <= self.window

    def split(self, text: str, masked: str, level: int) -> list[str]:
        """Segments of ``text``, which is known to be longer than the window."""
        if level == len(_BOUNDARIES):
            return self.split_atoms(text)
        pieces = _cut(text, masked, _BOUNDARIES[level])
        if len(pieces) == 1:
            return self.split(text, masked, level + 1)
        segments: list[str] = []
        group: list[str] = []
        group_tokens = 0
        for piece, piece_mask in pieces:
            tokens = self.count(piece)
            if tokens > self.window and not self.fits([piece]):
                segments += self.emit(group)
                group, group_tokens = [], 0
                segments += self.split(piece, piece_mask, level + 1)
                continue
            if group and group_tokens + tokens > self.window:
                segments += self.emit(group)
                group, group_tokens = [], 0
            group.append(piece)
            group_tokens += tokens
        return segments + self.emit(group)

    def emit(self, group: list[str]) -> list[str]:
        """Join a packed group, re-checking the real count once (BPE is not exactly additive)."""
        segments = []
        while group:
            if len(group) == 1 or self.fits(group):
                segments.append("".join(group).strip())
                break
            cut = self.longest_fitting(group, 1, len(group))
            segments.append("".join(group[:cut]).strip())
            group = group[cut:]
        return [s for s in segments if s]

    def longest_fitting(self, atoms: list[str], low: int, high: int) -> int:
        """Largest ``k`` in ``[low, high)`` with ``atoms[:k]`` fitting; ``low`` is taken as fitting."""
        while high - low > 1:
            middle = (low + high) // 2
            if self.fits(atoms[:middle]):
                low = middle
            else:
                high = middle
        return low

    def split_atoms(self, text: str) -> list[str]:
        """Character-level cuts (a tag is one atom): gallop to bracket the fit, then bisect."""
        atoms = _ATOM_RE.findall(text)
        segments = []
        start = 0
        while start < len(atoms):
            rest = len(atoms) - start
            low, probe = 1, min(rest, self.window)
            while probe > low and self.fits(atoms[start : start + probe]):
                low = probe
                if probe == rest:
                    break
                probe = min(rest, 2 * probe)
            cut = rest if low == rest else self.longest_fitting(atoms[start : start + probe], low, max(probe, low + 1))
            while 1 < cut < rest and _closes(atoms[start + cut]):
                cut -= 1  # keep closing punctuation (。」!) with the text it ends
            segments.append("".join(atoms[start : start + cut]).strip())
            start += cut
        return [s for s in segments if s]


def split_text(
    text: str,
    count_tokens: Callable[[str], int],
    length_threshold: int = 50,
    window_size: int = 50,
) -> list[str]:
    """Split ``text`` into segments of at most ``window_size`` tokens (see the module docstring).

    Text of at most ``length_threshold`` tokens comes back whole; blank text gives no segments.
    Only whitespace at cut points is lost: the segments' non-space characters, concatenated, are
    exactly the input's. A single unit that cannot be cut (one tag, one character) may exceed the
    window.
    """
    text = text.strip()
    if not text:
        return []
    if count_tokens(text) <= length_threshold:
        return [text]
    return _Splitter(count_tokens, window_size).split(text, _mask_tags(text), 0)
