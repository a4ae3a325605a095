"""The model registry: which family a model directory holds, and how its engine is built.

Each family lives in ``fasttts/models/<name>/`` and declares itself in ``<name>/family.py`` as one
:class:`ModelFamily`: its name, a detector that reads only the directory's files (never its name),
and its engine class as ``"module:Class"``, imported only when chosen so detection stays cheap.
Every engine is built the same way, ``EngineClass.from_settings(model_path, settings, llm=None)``
(:meth:`fasttts.engine.base.TTSEngine.from_settings`).

This module sits above :mod:`fasttts.engine` (the engine package never imports a model family).
Adding a family: CONTRIBUTING.md, "Adding a model family".
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from fasttts.backends.base import LLMBackend
from fasttts.config import Settings, with_overrides
from fasttts.engine.base import TTSEngine
from fasttts.errors import ModelLoadError
from fasttts.threads import run_in_fresh_thread

FAMILY_MODULES: tuple[str, ...] = (
    "fasttts.models.piper.family",  # first: a directory of *.onnx voices is Piper's
    "fasttts.models.spark.family",
    "fasttts.models.orpheus.family",
    "fasttts.models.megatts3.family",
)
"""Every registered family's declaration module, in detection order (the first match wins)."""

DEFAULT_FAMILY = "piper"
"""The family served when no model path is given (the bundled zero-download voice)."""


@dataclass(frozen=True)
class ModelFamily:
    """One model family as the registry sees it."""

    name: str
    """The engine's ``model_type`` (reported by ``/health``)."""
    detect: Callable[[Path], bool]
    """Whether an existing path holds this family, from its files only; must not load weights."""
    engine: str
    """``"module:Class"`` of its :class:`~fasttts.engine.base.TTSEngine` subclass."""
    layout: str
    """What the directory holds, for the error naming every layout we know."""

    def engine_class(self) -> type[TTSEngine]:
        module, _, name = self.engine.partition(":")
        cls = getattr(importlib.import_module(module), name)
        if not (isinstance(cls, type) and issubclass(cls, TTSEngine)):
            raise TypeError(f"{self.engine} is not a TTSEngine subclass")
        return cls


@cache
def families() -> tuple[ModelFamily, ...]:
    """The registered families, in detection order."""
    found = []
    for module in FAMILY_MODULES:
        family = importlib.import_module(module).FAMILY
        if not isinstance(family, ModelFamily):
            raise TypeError(f"{module}.FAMILY is not a ModelFamily")
        found.append(family)
    return tuple(found)


def family(name: str) -> ModelFamily:
    """The family called ``name``."""
    for candidate in families():
        if candidate.name == name:
            return candidate
    raise ModelLoadError(f"unknown model family {name!r}; registered: {', '.join(f.name for f in families())}")


def detect_family(model_path: str | Path | None) -> ModelFamily:
    """The family an official release directory belongs to (None: :data:`DEFAULT_FAMILY`)."""
    if model_path is None:
        return family(DEFAULT_FAMILY)
    root = Path(model_path)
    if not root.exists():
        raise ModelLoadError(f"model path {root} does not exist")
    for candidate in families():
        if candidate.detect(root):
            return candidate
    layouts = "; ".join(f"{f.name}: {f.layout}" for f in families())
    raise ModelLoadError(f"cannot tell which model {root} holds; expected one of these layouts: {layouts}")


def detect_model_type(model_path: str | Path | None) -> str:
    """The name of the family ``model_path`` holds (see :func:`detect_family`)."""
    return detect_family(model_path).name


def load_engine(settings: Settings, *, llm: LLMBackend | None = None) -> TTSEngine:
    """The engine for ``settings.model_path`` built from ``settings`` (``llm``: an already built
    backend instead of ``settings.backend``). Call ``await engine.start()`` before use."""
    root = Path(settings.model_path) if settings.model_path is not None else None
    engine_class = detect_family(root).engine_class()
    # Loading runs parallel torch ops (weight folds, kernel timings): on a thread that ends, so the
    # caller's thread (an event loop's, or asyncio.to_thread's, which lives on) keeps no OpenMP
    # team that would throttle the LLM engine thread's (fasttts/threads.py).
    return run_in_fresh_thread(lambda: engine_class.from_settings(root, settings, llm=llm), name="fasttts-load")


def AutoEngine(model_path: str | Path | Settings | None = None, backend: str | None = None, **overrides: Any) -> TTSEngine:  # noqa: N802
    """Load the engine for ``model_path`` (None: the bundled Piper voice) on ``backend``.

    Named like a class (as transformers' ``Auto*`` factories) because users call it as one. Accepts
    a :class:`Settings` (what the server and workers pass) or a path, plus any Settings field as a
    keyword (``llm_device``, ``torch_dtype``, ``batch_size``, ``seed``, …).
    """
    if backend is not None:
        overrides["backend"] = backend
    if isinstance(model_path, Settings):
        settings = with_overrides(model_path, **{k: v for k, v in overrides.items() if v is not None})
    else:
        settings = with_overrides(None, model_path=None if model_path is None else str(model_path), **overrides)
    return load_engine(settings)
