"""``AutoEngine``: build the right engine for a model directory.

Named like a class (as in FlashTTS and transformers' ``Auto*`` factories) because users call it
as one; it returns the concrete :class:`~fasttts.engine.base.TTSEngine` for the detected family.
"""

from __future__ import annotations

from typing import Any

from fasttts.config import Settings
from fasttts.engine.base import TTSEngine
from fasttts.errors import ModelLoadError
from fasttts.models import detect_model_type


def AutoEngine(model_path: "str | Settings | None" = None, backend: str | None = None, **overrides: Any) -> TTSEngine:  # noqa: N802
    """Load the engine for ``model_path`` (None: the bundled Piper voice) on ``backend``.

    Accepts either a :class:`Settings` (what the server and workers pass) or a path plus any
    Settings field as keyword (``llm_device``, ``torch_dtype``, ``batch_size``, ``seed``, …).
    Call ``await engine.start()`` before use.
    """
    if isinstance(model_path, Settings):
        settings = model_path.model_copy(update={k: v for k, v in {"backend": backend, **overrides}.items() if v is not None})
    else:
        values = {"model_path": model_path, **overrides}
        if backend is not None:
            values["backend"] = backend
        settings = Settings(**values)
    kind = detect_model_type(settings.model_path)
    if kind == "piper":
        from fasttts.models.piper import PiperEngine

        return PiperEngine.load(settings.model_path, seed=settings.seed)
    if kind == "spark":
        from fasttts.models.spark.engine import SparkEngine

        return SparkEngine.load(
            settings.model_path,
            backend=settings.backend,
            llm_device=settings.llm_device,
            tokenizer_device=settings.tokenizer_device,
            detokenizer_device=settings.detokenizer_device,
            torch_dtype=settings.torch_dtype,
            llm_attn_implementation=settings.llm_attn_implementation,
            wav2vec_attn_implementation=settings.wav2vec_attn_implementation,
            max_length=settings.max_length,
            llm_batch_size=settings.llm_batch_size,
            llm_gpu_memory_utilization=settings.llm_gpu_memory_utilization,
            cache_implementation=settings.cache_implementation,
            batch_size=settings.batch_size,
            wait_timeout=settings.wait_timeout,
            seed=settings.seed,
            fix_voice=settings.fix_voice,
            max_reference_seconds=settings.max_reference_seconds,
        )
    if kind == "orpheus":
        from fasttts.models.orpheus.engine import OrpheusEngine

        return OrpheusEngine.load(settings.model_path, settings=settings)
    raise ModelLoadError(f"{kind} models are recognised but not supported yet")
