"""SubRip (``.srt``) and WebVTT (``.vtt``) captions from timed text segments.

Synthesis knows exactly when each text segment starts and ends in the audio, so captions come for
free; this module only formats them. Both formats number time as ``HH:MM:SS`` plus milliseconds
(SRT with a comma, VTT with a dot); cue text may not contain blank lines (they end a cue), and
VTT text must escape ``&`` and ``<``.
"""

from __future__ import annotations

import re

from fasttts.errors import InvalidRequestError

SUBTITLE_FORMATS = ("srt", "vtt")

_BLANK_LINES = re.compile(r"\n\s*\n+")


def format_timestamp(seconds: float, fmt: str) -> str:
    """``HH:MM:SS,mmm`` (srt) or ``HH:MM:SS.mmm`` (vtt), rounded to the millisecond."""
    total_ms = round(max(0.0, seconds) * 1000)
    hours, rest = divmod(total_ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    separator = "," if fmt == "srt" else "."
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def _cue_text(text: str, fmt: str) -> str:
    lines = (line.strip() for line in text.replace("\r\n", "\n").split("\n"))
    text = _BLANK_LINES.sub("\n", "\n".join(lines).strip())
    if fmt == "vtt":
        text = text.replace("&", "&amp;").replace("<", "&lt;").replace("-->", "--&gt;")
    return text


def write_subtitles(segments: list[tuple[float, float, str]], fmt: str) -> str:
    """Captions for ``segments`` of (start seconds, end seconds, text), in ``fmt`` ("srt"/"vtt").

    Segments with no text are skipped; cues are numbered from 1 in the order given.
    """
    if fmt not in SUBTITLE_FORMATS:
        raise InvalidRequestError(f"unsupported subtitle format {fmt!r}; choose srt or vtt", param="subtitle_format")
    cues: list[str] = []
    for start, end, text in segments:
        if start < 0 or end < start:
            raise ValueError(f"bad subtitle timing: start={start}, end={end}")
        body = _cue_text(text, fmt)
        if not body:
            continue
        timing = f"{format_timestamp(start, fmt)} --> {format_timestamp(end, fmt)}"
        number = f"{len(cues) + 1}\n" if fmt == "srt" else ""
        cues.append(f"{number}{timing}\n{body}\n")
    header = "WEBVTT\n\n" if fmt == "vtt" else ""
    return header + "\n".join(cues)
