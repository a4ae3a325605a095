"""Backend plug-ins by name, imported only when chosen.

Heavy backends are extras: importing one that is not installed raises
:class:`~fasttts.errors.MissingExtraError`, which names the extra to install.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fasttts.backends.base import LLMBackend, Ranges
from fasttts.params import BackendName

if TYPE_CHECKING:
    from fasttts.config import Settings

BACKENDS: dict[BackendName, str] = {
    "torch": "fasttts.backends.torch_backend:TorchBackend",
    "vllm": "fasttts.backends.vllm_backend:VLLMBackend",
    "sglang": "fasttts.backends.sglang_backend:SGLangBackend",
    "llama-cpp": "fasttts.backends.llama_cpp_backend:LlamaCppBackend",
    "mlx-lm": "fasttts.backends.mlx_backend:MLXBackend",
}


@dataclass(frozen=True)
class BackendConfig:
    """What every backend is built from (the server-guide flags that concern the LLM)."""

    model_dir: str
    device: str = "auto"
    dtype: str = "auto"
    max_length: int = 32768
    batch_size: int = 256
    gpu_memory_utilization: float = 0.6
    attn_implementation: str = "eager"
    cache_implementation: str | None = None
    seed: int = 0
    output_ids: Ranges | None = None
    """Every id the model can emit (its grammar's :meth:`~fasttts.backends.base.TokenConstraint.vocabulary`);
    a backend may compute the LM head for these rows only. ``None``: the whole vocabulary."""

    @classmethod
    def from_settings(cls, settings: Settings, *, model_dir: str, output_ids: Ranges | None = None) -> BackendConfig:
        """The LLM flags of ``settings`` for the LLM directory ``model_dir`` (the one place a
        model turns its settings into a backend configuration)."""
        return cls(
            model_dir=model_dir,
            device=settings.llm_device,
            dtype=settings.torch_dtype,
            max_length=settings.max_length,
            batch_size=settings.llm_batch_size,
            gpu_memory_utilization=settings.llm_gpu_memory_utilization,
            attn_implementation=settings.llm_attn_implementation,
            cache_implementation=settings.cache_implementation,
            seed=settings.seed,
            output_ids=output_ids,
        )


def create_backend(name: str, config: BackendConfig) -> LLMBackend:
    """Build the backend called ``name`` (one of :data:`BACKENDS`)."""
    target = BACKENDS.get(name)  # type: ignore[call-overload]  # any str may be asked for; unknown ones are refused
    if target is None:
        from fasttts.errors import InvalidRequestError

        raise InvalidRequestError(f"unknown backend '{name}'; choose one of {', '.join(BACKENDS)}", param="backend")
    module_name, class_name = target.split(":")
    backend = getattr(importlib.import_module(module_name), class_name)(config)
    if not isinstance(backend, LLMBackend):
        raise TypeError(f"{target} is not an LLMBackend")
    return backend
