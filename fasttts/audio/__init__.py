"""Audio leaf package: decode, resample, encode (every response format and M4B), crossfade, captions.

Pure functions and small classes over float32 mono numpy arrays; no model, no HTTP, no I/O beyond
the files a caller names.
"""

from fasttts.audio.encode import CONTENT_TYPES, AudioEncoder, encode_audio, supported_formats
from fasttts.audio.io import load_audio
from fasttts.audio.m4b import read_chapters, write_m4b
from fasttts.audio.resample import StreamResampler, resample
from fasttts.audio.subtitles import write_subtitles

__all__ = [
    "CONTENT_TYPES",
    "AudioEncoder",
    "StreamResampler",
    "encode_audio",
    "load_audio",
    "read_chapters",
    "resample",
    "supported_formats",
    "write_m4b",
    "write_subtitles",
]
