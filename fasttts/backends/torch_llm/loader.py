"""Strict loading of an HF causal-LM directory into :class:`~.model.CausalLM`.

Reads ``model.safetensors`` or the sharded ``model-XXXXX-of-YYYYY.safetensors`` named by
``model.safetensors.index.json``, exactly as released. Every checkpoint tensor must match a model
parameter by name and shape and every parameter must be present; otherwise
:class:`~fasttts.errors.ModelLoadError` names each offender. The model is built on the meta device
and filled by plain reads straight into its parameters (no memory map: see
:func:`~fasttts.checkpoint.read_safetensors_into`), so the weights are never held twice. On CPU
each decoder linear is read only when its turn to be packed comes (its parts into row slices of
its fused weight), so an int8 model never holds the bfloat16 decoder it quantizes; before each
layer the previous one's freed transients are handed back to the OS
(:func:`~fasttts.checkpoint.release_freed_memory`), which malloc would otherwise keep resident.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
from safetensors import safe_open
from torch import nn

from fasttts import devices
from fasttts.backends.torch_llm import x86_kernels
from fasttts.backends.torch_llm.cpu_linear import ACTIVATION_DTYPE, largest_linear, pack_linears, plan_for
from fasttts.backends.torch_llm.model import CausalLM, LLMConfig, linear_checkpoint_tensors
from fasttts.checkpoint import check_tensors, read_safetensors_into, release_freed_memory
from fasttts.errors import ModelLoadError

logger = logging.getLogger(__name__)

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
_IGNORED_SUFFIXES = ("rotary_emb.inv_freq",)  # computed, not learned; old exports carry it


def resolve_device(device: str) -> torch.device:
    return torch.device(devices.resolve_device(device))


def resolve_dtype(dtype: str, device: torch.device, cfg: LLMConfig) -> str:
    """The weight format to run in: ``float32``, ``bfloat16``, ``float16`` or (CPU) ``int8``.

    ``auto`` is bfloat16 on CUDA, and on CPU whatever :func:`auto_cpu_format` measures. float16
    overflows Qwen2 (Spark prints ``!!!!``), so it is promoted for Qwen2 models, loudly: to
    bfloat16 on CUDA, to float32 on CPU."""
    if dtype == "auto":
        return {"cuda": "bfloat16", "cpu": "auto"}.get(device.type, "float32")
    if dtype == "int8" and device.type != "cpu":
        raise ModelLoadError(f"torch_dtype int8 (weight-only) runs on CPU only, not {device.type}; use bfloat16 there")
    if dtype not in _DTYPES and dtype != "int8":
        raise ModelLoadError(f"unknown dtype {dtype!r}; choose auto, float32, bfloat16, float16 or int8")
    if dtype == "float16" and cfg.model_type == "qwen2":
        bf16_ok = device.type != "cuda" or torch.cuda.is_bf16_supported()
        promoted = "bfloat16" if device.type == "cuda" and bf16_ok else "float32"
        logger.warning("torch_dtype float16 overflows Qwen2 models (garbage output); running the LLM in %s instead", promoted)
        return promoted
    return dtype


AUTO_PROBE_SHAPE = (9728, 896)  # Spark's (Qwen2.5-0.5B's) fused gate/up: auto decides on one shape, so tiny and full models agree


def auto_cpu_format() -> str:
    """bfloat16 where its measured kernels are no slower than float32's at any row bucket (it
    halves the bytes each token reads and is exact for checkpoints released in bfloat16), else
    float32. int8 changes the weights, so it is never chosen for you."""
    bf16 = plan_for("bfloat16", *AUTO_PROBE_SHAPE, torch.get_num_threads())
    return "float32" if bf16.slower_than_float32 else "bfloat16"


def checkpoint_files(model_dir: Path) -> dict[str, Path]:
    """Tensor name -> file holding it, for a single or sharded safetensors checkpoint."""
    single, index = model_dir / "model.safetensors", model_dir / "model.safetensors.index.json"
    if single.is_file():
        with safe_open(str(single), framework="pt") as f:
            return dict.fromkeys(f.keys(), single)
    if index.is_file():
        weight_map = json.loads(index.read_text())["weight_map"]
        missing_files = sorted({f for f in weight_map.values() if not (model_dir / f).is_file()})
        if missing_files:
            raise ModelLoadError(f"{model_dir}: shard files named in the index are missing: {', '.join(missing_files)}")
        return {name: model_dir / f for name, f in weight_map.items()}
    raise ModelLoadError(f"{model_dir} has neither model.safetensors nor model.safetensors.index.json")


def load_model(model_dir: str | Path, *, device: str = "auto", dtype: str = "auto", attn_implementation: str = "eager") -> CausalLM:
    """Build the model described by ``config.json`` and fill it strictly from the checkpoint."""
    model_dir = Path(model_dir)
    cfg = LLMConfig.from_dir(model_dir)
    dev = resolve_device(device)
    weight_format = resolve_dtype(dtype, dev, cfg)
    files = checkpoint_files(model_dir)

    with torch.device("meta"):
        model = CausalLM(cfg, attn_implementation)
    expected = {name: tuple(t.shape) for name, t in model.checkpoint_tensors().items()}  # fused linears as their parts
    shapes = {}
    for path in set(files.values()):
        with safe_open(str(path), framework="pt") as f:
            shapes.update({n: tuple(f.get_slice(n).get_shape()) for n in f.keys() if files.get(n) == path})
    tied = cfg.tie_word_embeddings
    check_tensors(
        expected,
        shapes,
        where=f"the checkpoint in {model_dir}",  # computed buffers, and a tied head HF drops
        ignore=lambda n: n.endswith(_IGNORED_SUFFIXES) or (tied and n == "lm_head.weight"),
    )

    plan = None
    if dev.type == "cpu" and weight_format != "float16":
        shape = largest_linear(model.model)
        weight_format = auto_cpu_format() if weight_format == "auto" else weight_format
        plan = plan_for(weight_format, *shape, torch.get_num_threads())
    torch_dtype = plan.activation if plan is not None else _DTYPES[weight_format]  # e.g. int8 models compute in bfloat16
    model = model.to(dtype=torch_dtype)
    if plan is not None:  # linears (read in the format's own dtype, then packed) and embeddings stay in it: a
        for module in model.modules():  # bfloat16 model computing in float32 holds no float32 copy of either
            if isinstance(module, (nn.Linear, nn.Embedding)):
                module.to(dtype=ACTIVATION_DTYPE[weight_format])
    packed = {id(m) for m in model.model.modules() if isinstance(m, nn.Linear)} if plan is not None else set()
    for module in model.modules():  # the decoder's linears to be packed stay unread until their turn
        if id(module) not in packed:
            module.to_empty(device=dev, recurse=False)
    _read_into({n: t for n, t in model.checkpoint_tensors().items() if not t.is_meta}, files)
    if plan is not None:  # decoder layers (the LM head is sliced per step), each read just before it is packed
        layer = ""

        def fill(prefix: str, linear: nn.Linear) -> None:
            nonlocal layer
            if prefix.rsplit(".", 2)[0] != layer:  # a new decoder layer: the last one's transients,
                layer = prefix.rsplit(".", 2)[0]  # freed but kept resident by malloc, go back
                release_freed_memory()
            linear.to_empty(device=dev)
            _read_into(linear_checkpoint_tensors(f"model.{prefix}", linear), files)

        pack_linears(model.model, dev, weight_format, plan, fill)
        release_freed_memory()
        if plan.slower_than_float32:
            logger.warning("%s weights measured slower than float32 here at %s rows", weight_format, plan.slower_than_float32)
    model.weight_format = weight_format
    if dev.type == "cpu" and model.attn_implementation == "eager" and cfg.head_dim % x86_kernels.HEAD_DIM_MULTIPLE == 0 and x86_kernels.ops() is not None:
        model.decode_attention = x86_kernels.decode_attention
    logger.info(
        "loaded %s LLM from %s: %d layers on %s, %s%s",
        cfg.model_type,
        model_dir,
        cfg.num_layers,
        dev,
        plan.describe() if plan is not None else f"{weight_format} weights",
        " (chosen by --torch_dtype auto)" if dtype == "auto" else "",
    )
    return model.eval()


def _read_into(targets: dict[str, torch.Tensor], files: dict[str, Path]) -> None:
    """Fill each tensor (a parameter, or a fused linear's row slice) from the file holding its
    name, read straight into it."""
    by_file: dict[Path, dict[str, torch.Tensor]] = {}
    for name, tensor in targets.items():
        by_file.setdefault(files[name], {})[name] = tensor
    for path, group in by_file.items():
        read_safetensors_into(path, group)
