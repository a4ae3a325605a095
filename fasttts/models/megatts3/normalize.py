"""MegaTTS3's text normalisation: WeTextProcessing's, as the reference runs it, when the ``mega``
extra is installed; FastTTS's own (:func:`fasttts.text.normalize_text`) otherwise.

The reference (``MegaTTS3DiTInfer.forward`` of ``tts/infer_cli.py``) normalises its whole input
with WeTextProcessing's English normaliser when langdetect calls it English, else with the Chinese
one (``remove_erhua=False, remove_interjections=False``), then splits it. Here the language is
decided by script, as the splitter decides it (:func:`~fasttts.models.megatts3.text.is_chinese`),
and a text is normalised line by line: the English grammar drops a line break, gluing the
sentences either side (``"A.\nB."`` → ``"A.B."``), and fails on a leading one (pynini's
``FstOpError``), while FastTTS's texts (chapters, paragraphs) keep their breaks, which end
sentences for the splitter. A text of one line is normalised exactly as the reference does.

Loading the two grammars takes seconds (the wheel ships them compiled), so it happens once per
process, when a MegaTTS3 engine starts (or at its first text), with one log line saying which
normaliser runs. pynini does not promise thread safety, so its calls hold a lock.
"""

from __future__ import annotations

import importlib.metadata
import logging
import threading
from dataclasses import dataclass
from typing import Any

from fasttts.models.megatts3.text import is_chinese
from fasttts.text import normalize_text

logger = logging.getLogger(__name__)

_LOCK = threading.Lock()
_LOADED: list[WeText | None] = []
"""The loaded normalisers (one entry once :func:`wetext` ran): ``None`` when not installed."""


@dataclass(frozen=True)
class WeText:
    """WeTextProcessing's two normalisers, configured as the reference configures them."""

    zh: Any
    en: Any
    version: str

    def normalize(self, text: str) -> str:
        normalizer = self.zh if is_chinese(text) else self.en
        return "\n".join(self._line(normalizer, line) if line.strip() else line for line in text.splitlines())

    @staticmethod
    def _line(normalizer: Any, line: str) -> str:
        try:
            with _LOCK:
                return str(normalizer.normalize(line))
        except Exception as exc:  # a grammar that cannot take the line: ours says it rather than fail the request
            logger.warning("WeTextProcessing could not normalise %r (%s); FastTTS's normaliser takes it", line[:60], exc)
            return normalize_text(line)


def wetext() -> WeText | None:
    """WeTextProcessing's normalisers, loaded on the first call; ``None`` when it is not installed."""
    with _LOCK:
        if not _LOADED:
            _LOADED.append(_load())
        return _LOADED[0]


def _load() -> WeText | None:
    try:
        from tn.chinese.normalizer import Normalizer as ZhNormalizer
        from tn.english.normalizer import Normalizer as EnNormalizer
    except ImportError:
        logger.info("MegaTTS3 text normalisation: FastTTS's own (install the 'mega' extra for WeTextProcessing, the reference's)")
        return None
    loaded = WeText(
        ZhNormalizer(overwrite_cache=False, remove_erhua=False, remove_interjections=False),
        EnNormalizer(overwrite_cache=False),
        importlib.metadata.version("WeTextProcessing"),
    )
    logger.info("MegaTTS3 text normalisation: WeTextProcessing %s, as the reference", loaded.version)
    return loaded


def normalize(text: str, language: str | None = None) -> str:
    """``text`` as MegaTTS3 should read it: WeTextProcessing's when installed, else ours."""
    tools = wetext()
    return normalize_text(text, language=language) if tools is None else tools.normalize(text)
