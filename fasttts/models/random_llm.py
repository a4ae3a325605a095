"""Random-weight Hugging Face LLM directories (Qwen2 / Llama), for tests and benchmarks.

The directory looks exactly like a release (see /work/shared/model-formats/spark.md and
orpheus.md): ``config.json`` with the HF keys of ``Qwen2ForCausalLM`` / ``LlamaForCausalLM``,
``model.safetensors`` (or shards plus ``model.safetensors.index.json``) with HF tensor names, and a
byte-level BPE tokenizer in the release's files: the release's own BPE and ids when asked and its
rank file is installed (:mod:`fasttts.models.release_tokenizers`), else a small one. So the same
loaders read it and the real model, and transformers can load it too (which is how tests prove
format fidelity).

Tensors are generated and written one at a time (safetensors' layout is written by hand), so a
full-size Spark LLM (about 2 GB in float32) never sits in memory at once.

Also here: :func:`load_tokenizer` and :func:`token_id`, the one way the project reads an LLM
directory's tokenizer and looks up token ids by string.
"""

from __future__ import annotations

import json
import logging
import math
import struct
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

from fasttts.errors import ModelLoadError
from fasttts.models.release_tokenizers import (
    LLAMA3_PATTERN,
    QWEN2_PATTERN,
    QWEN25_SPECIAL_TOKENS,
    RANK_FILES,
    add_tokens_in_order,
    rank_file,
    release_bpe,
)

__all__ = [
    "MEGA_G2P_ADDED_TOKENS",
    "ORPHEUS_LLAMA_FULL",
    "ORPHEUS_LLAMA_TINY",
    "SPARK_QWEN2_FULL",
    "SPARK_QWEN2_TINY",
    "build_tokenizer",
    "default_special_tokens",
    "load_tokenizer",
    "token_id",
    "write_g2p_tokenizer",
    "write_random_llm",
    "write_tokenizer",
]

log = logging.getLogger(__name__)

# ----------------------------------------------------------------------------- size presets
SPARK_QWEN2_FULL: dict[str, Any] = dict(  # Qwen2.5-0.5B as used by Spark-TTS-0.5B
    hidden=896,
    layers=24,
    heads=14,
    kv_heads=2,
    intermediate=4864,
    vocab_size=166000,
    max_position=32768,
    rope_theta=1_000_000.0,
    rope_scaling=None,
    tie_word_embeddings=True,
    rms_norm_eps=1e-6,
)
SPARK_QWEN2_TINY: dict[str, Any] = dict(
    hidden=64,
    layers=2,
    heads=4,
    kv_heads=2,
    intermediate=128,
    vocab_size=None,  # None: tokenizer size, rounded up
    max_position=4096,
    rope_theta=1_000_000.0,
    rope_scaling=None,
    tie_word_embeddings=True,
    rms_norm_eps=1e-6,
)
_LLAMA3_ROPE = dict(rope_type="llama3", factor=32.0, low_freq_factor=1.0, high_freq_factor=4.0, original_max_position_embeddings=8192)
ORPHEUS_LLAMA_FULL: dict[str, Any] = dict(  # Llama-3.2-3B shape, orpheus-3b-0.1-ft vocabulary
    hidden=3072,
    layers=28,
    heads=24,
    kv_heads=8,
    head_dim=128,
    intermediate=8192,
    vocab_size=156940,
    max_position=131072,
    rope_theta=500_000.0,
    rope_scaling=_LLAMA3_ROPE,
    tie_word_embeddings=True,
    rms_norm_eps=1e-5,
)
ORPHEUS_LLAMA_TINY: dict[str, Any] = dict(  # small original context so llama3 scaling touches every band
    hidden=64,
    layers=2,
    heads=4,
    kv_heads=2,
    head_dim=16,
    intermediate=128,
    vocab_size=None,
    max_position=4096,
    rope_theta=500_000.0,
    rope_scaling={**_LLAMA3_ROPE, "original_max_position_embeddings": 256},
    tie_word_embeddings=True,
    rms_norm_eps=1e-5,
)

# ----------------------------------------------------------------------------- tokenizer
_CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "Hello, world! This is a small test of the speech server.",
    "She sells sea shells by the sea shore, and the shells she sells are surely sea shells.",
    "It was the best of times, it was the worst of times; it was the age of wisdom.",
    "Numbers like 1, 22, 333 and 2024 appear in text, as do dates and prices: $4.99.",
    "Good morning! How are you today? I'm fine, thank you, and you?",
    "Text to speech turns written words into natural sounding audio for everyone.",
]

MEGA_G2P_ADDED_TOKENS: list[str] = ["<BOT>", "<BOS>"] + [f"<Reserved_TTS_{k}>" for k in range(17200)]
"""What MegaTTS3's g2p tokenizer adds after Qwen2.5's 22 tokens (``<BOT>`` 151665, ``<BOS>`` 151666,
``<Reserved_TTS_0>`` 151667 … ``<Reserved_TTS_17199>`` 168866; all special; mega.md §5)."""


def default_special_tokens(arch: str, *, release: bool = False) -> dict[str, Any]:
    """The special tokens of the real release family (roles as in ``special_tokens_map.json``);
    ``release``: Qwen2.5's full map (its 13 additional specials) rather than the small BPE's few."""
    if arch == "qwen2":
        if release:
            return QWEN25_SPECIAL_TOKENS
        return {"eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>", "additional_special_tokens": ["<|im_start|>", "<|im_end|>"]}
    if arch == "llama":
        return {
            "bos_token": "<|begin_of_text|>",
            "eos_token": "<|eot_id|>",
            "additional_special_tokens": ["<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"],
        }
    raise ValueError(f"arch must be qwen2 or llama, not {arch!r}")


def _special_strings(special_tokens: dict[str, Any]) -> list[str]:
    ordered = [special_tokens.get(k) for k in ("bos_token", "eos_token", "pad_token", "unk_token")]
    ordered += list(special_tokens.get("additional_special_tokens", []))
    return list(dict.fromkeys(t for t in ordered if t))


def _small_bpe(arch: str, bpe_vocab: int) -> Tokenizer:
    """A byte-level BPE of ``bpe_vocab`` tokens trained on a few sentences, with the release's
    normaliser and pre-tokenizer: every text encodes, but into more (and other) ids than the release."""
    tok = Tokenizer(models.BPE(unk_token=None, fuse_unk=False, byte_fallback=False, ignore_merges=arch == "llama"))
    if arch == "qwen2":
        tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN2_PATTERN if arch == "qwen2" else LLAMA3_PATTERN), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=bpe_vocab, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(_CORPUS, trainer=trainer)
    return tok


def build_tokenizer(
    arch: str,
    special_tokens: dict[str, Any],
    added_tokens: Sequence[str],
    *,
    bpe_vocab: int = 400,
    release: bool = False,
    added_special: bool = False,
) -> Tokenizer:
    """The family's BPE, then ``special_tokens``, then ``added_tokens`` (special if ``added_special``).

    ``release``: the release's own BPE and family specials at their ids (see
    :mod:`fasttts.models.release_tokenizers`) when its wheel is installed; otherwise, and when not
    asked, a small BPE (logged, since every id then differs from the release's).
    """
    tok = release_bpe(arch) if release else None
    if tok is not None:
        log.info("tokenizer: the release's %s BPE from %s", arch, rank_file(arch))
    elif release:
        log.warning(
            "tokenizer: %s is not installed (pip install -e '.[bench]'), so this model gets a small %d-token BPE and its token ids differ from the release's",
            RANK_FILES[arch][2],
            bpe_vocab,
        )
    else:
        log.info("tokenizer: a small %d-token %s BPE (ids differ from the release's)", bpe_vocab, arch)
    if tok is None:
        tok = _small_bpe(arch, bpe_vocab)
    # specials the release BPE already has keep their ids (adding an existing token is a no-op)
    add_tokens_in_order(tok, [(t, True) for t in _special_strings(special_tokens)])
    add_tokens_in_order(tok, [(t, added_special) for t in added_tokens])
    byte_level = processors.ByteLevel(trim_offsets=False)
    bos = special_tokens.get("bos_token")
    if arch == "llama" and bos:  # Llama-3 prepends <|begin_of_text|> to every encoding
        bos_id = tok.token_to_id(bos)
        template = processors.TemplateProcessing(single=f"{bos}:0 $A:0", pair=f"{bos}:0 $A:0 {bos}:1 $B:1", special_tokens=[(bos, bos_id)])
        tok.post_processor = processors.Sequence([byte_level, template])
    else:
        tok.post_processor = byte_level
    return tok


def write_tokenizer(
    out_dir: str | Path,
    *,
    arch: str,
    added_tokens: Sequence[str] = (),
    special_tokens: dict[str, Any] | None = None,
    release: bool = False,
    added_special: bool = False,
    bpe_vocab: int = 400,
    max_position: int = 32768,
) -> Tokenizer:
    """Write only the tokenizer files of an LLM directory (what a test of the tokenizer needs:
    writing the weights of a full-size model takes minutes) and return the tokenizer."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    special_tokens = special_tokens or default_special_tokens(arch, release=release)
    tok = build_tokenizer(arch, special_tokens, added_tokens, bpe_vocab=bpe_vocab, release=release, added_special=added_special)
    _write_tokenizer_files(out, tok, arch, special_tokens, max_position)
    return tok


def write_g2p_tokenizer(out_dir: str | Path, *, release: bool = True) -> Tokenizer:
    """MegaTTS3's ``g2p/`` tokenizer files: Qwen2's BPE, Qwen2.5's 22 tokens, then
    :data:`MEGA_G2P_ADDED_TOKENS` (with ``release`` and ``dashscope`` installed, at the release's
    ids; otherwise the small BPE, so only lookups by string hold)."""
    return write_tokenizer(out_dir, arch="qwen2", added_tokens=MEGA_G2P_ADDED_TOKENS, added_special=True, special_tokens=QWEN25_SPECIAL_TOKENS, release=release)


def _write_tokenizer_files(out: Path, tok: Tokenizer, arch: str, special_tokens: dict[str, Any], max_position: int) -> None:
    tok.save(str(out / "tokenizer.json"))
    added = tok.get_added_tokens_decoder()  # id -> AddedToken
    decoder = {
        str(i): {"content": t.content, "lstrip": t.lstrip, "normalized": t.normalized, "rstrip": t.rstrip, "single_word": t.single_word, "special": t.special}
        for i, t in sorted(added.items())
    }
    roles = {k: special_tokens.get(k) for k in ("bos_token", "eos_token", "pad_token", "unk_token")}
    extra = list(special_tokens.get("additional_special_tokens", []))
    if arch == "qwen2":  # Qwen2 ships vocab.json + merges.txt + added_tokens.json beside tokenizer.json
        tok.model.save(str(out))
        _dump(out / "added_tokens.json", {t.content: i for i, t in sorted(added.items())})
        config = {
            "add_bos_token": False,
            "add_prefix_space": False,
            "added_tokens_decoder": decoder,
            "additional_special_tokens": extra,
            **roles,
            "clean_up_tokenization_spaces": False,
            "errors": "replace",
            "model_max_length": max_position,
            "split_special_tokens": False,
            "tokenizer_class": "Qwen2Tokenizer",
        }
    else:
        config = {
            "added_tokens_decoder": decoder,
            **roles,
            "clean_up_tokenization_spaces": True,
            "model_input_names": ["input_ids", "attention_mask"],
            "model_max_length": max_position,
            "tokenizer_class": "PreTrainedTokenizerFast",
        }
    _dump(out / "tokenizer_config.json", config)
    _dump(out / "special_tokens_map.json", {k: v for k, v in {**roles, "additional_special_tokens": extra}.items() if v})


def load_tokenizer(llm_dir: str | Path) -> Tokenizer:
    """The ``tokenizers`` tokenizer of an HF LLM directory (its ``tokenizer.json``)."""
    path = Path(llm_dir) / "tokenizer.json"
    if not path.is_file():
        raise ModelLoadError(f"LLM directory {llm_dir} has no tokenizer.json")
    return Tokenizer.from_file(str(path))


def token_id(tokenizer: Tokenizer, token: str) -> int:
    """Id of ``token`` (a whole token string such as ``<|im_end|>``); ModelLoadError if absent."""
    tid = tokenizer.token_to_id(token)
    if tid is None:
        raise ModelLoadError(f"the tokenizer has no token {token!r}")
    return tid


# ----------------------------------------------------------------------------- weights
def _hf_config(arch: str, size: dict[str, Any], vocab_size: int, bos_id: int, eos_id: int, dtype: str) -> dict[str, Any]:
    common = {
        "attention_dropout": 0.0,
        "bos_token_id": bos_id,
        "eos_token_id": eos_id,
        "hidden_act": "silu",
        "hidden_size": size["hidden"],
        "initializer_range": 0.02,
        "intermediate_size": size["intermediate"],
        "max_position_embeddings": size["max_position"],
        "num_attention_heads": size["heads"],
        "num_hidden_layers": size["layers"],
        "num_key_value_heads": size["kv_heads"],
        "rms_norm_eps": size["rms_norm_eps"],
        "rope_scaling": size.get("rope_scaling"),
        "rope_theta": size["rope_theta"],
        "tie_word_embeddings": size["tie_word_embeddings"],
        "torch_dtype": dtype,
        "transformers_version": "4.57.6",
        "use_cache": True,
        "vocab_size": vocab_size,
    }
    if arch == "qwen2":
        return {
            "architectures": ["Qwen2ForCausalLM"],
            "model_type": "qwen2",
            **common,
            "max_window_layers": size["layers"],
            "sliding_window": size["max_position"],
            "use_sliding_window": False,
        }
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        **common,
        "attention_bias": False,
        "head_dim": size.get("head_dim") or size["hidden"] // size["heads"],
        "mlp_bias": False,
        "pretraining_tp": 1,
    }


def _tensor_shapes(arch: str, size: dict[str, Any], vocab_size: int) -> list[tuple[str, tuple[int, ...]]]:
    """HF tensor names and shapes, in release order."""
    c, i = size["hidden"], size["intermediate"]
    d = size.get("head_dim") or c // size["heads"]
    q, kv = size["heads"] * d, size["kv_heads"] * d
    shapes: list[tuple[str, tuple[int, ...]]] = [("model.embed_tokens.weight", (vocab_size, c))]
    for n in range(size["layers"]):
        p = f"model.layers.{n}."
        for proj, out in (("q_proj", q), ("k_proj", kv), ("v_proj", kv)):
            shapes.append((f"{p}self_attn.{proj}.weight", (out, c)))
            if arch == "qwen2":
                shapes.append((f"{p}self_attn.{proj}.bias", (out,)))
        shapes += [
            (f"{p}self_attn.o_proj.weight", (c, q)),
            (f"{p}mlp.gate_proj.weight", (i, c)),
            (f"{p}mlp.up_proj.weight", (i, c)),
            (f"{p}mlp.down_proj.weight", (c, i)),
            (f"{p}input_layernorm.weight", (c,)),
            (f"{p}post_attention_layernorm.weight", (c,)),
        ]
    shapes.append(("model.norm.weight", (c,)))
    if not size["tie_word_embeddings"]:
        shapes.append(("lm_head.weight", (vocab_size, c)))
    return shapes


def _random_tensor(name: str, shape: tuple[int, ...], gen: torch.Generator, dtype: torch.dtype) -> torch.Tensor:
    if name.endswith("norm.weight"):  # around 1, like trained norms
        t = 1.0 + 0.1 * torch.randn(shape, generator=gen)
    elif name.endswith(".bias"):
        t = 0.02 * torch.randn(shape, generator=gen)
    else:
        t = torch.randn(shape, generator=gen) * (1.0 / math.sqrt(shape[-1]))
    return t.to(dtype)


_ST_DTYPES = {torch.float32: ("F32", 4), torch.bfloat16: ("BF16", 2), torch.float16: ("F16", 2)}


def _write_safetensors(path: Path, shapes: list[tuple[str, tuple[int, ...]]], tensors: Iterator[torch.Tensor], dtype: torch.dtype) -> None:
    """Stream tensors into one safetensors file: header first (sizes are known), then raw data."""
    code, itemsize = _ST_DTYPES[dtype]
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, shape in shapes:
        nbytes = math.prod(shape) * itemsize
        header[name] = {"dtype": code, "shape": list(shape), "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)
    with path.open("wb") as f:
        f.write(struct.pack("<Q", len(blob)))
        f.write(blob)
        for (name, shape), tensor in zip(shapes, tensors, strict=True):
            assert tuple(tensor.shape) == shape, name
            f.write(tensor.contiguous().view(torch.uint8).numpy().data)  # no extra copy


def write_random_llm(
    out_dir: Path,
    *,
    arch: str,
    size: dict[str, Any],
    added_tokens: Sequence[str] = (),
    special_tokens: dict[str, Any] | None = None,
    seed: int = 0,
    dtype: str = "float32",
    bpe_vocab: int = 400,
    shard_bytes: int | None = None,
    release_tokenizer: bool = False,
    added_special: bool = False,
) -> Path:
    """Write a complete random-weight HF LLM directory and return it.

    ``size`` is one of the presets (or alike); its ``vocab_size`` may be ``None`` (tokenizer size
    rounded up to a multiple of 64) and must otherwise be at least the tokenizer's size; extra rows
    are unused, as in the real Qwen. ``shard_bytes`` splits the weights into
    ``model-0000N-of-0000M.safetensors`` with an index, as large releases do.
    ``release_tokenizer``: the release's BPE (:func:`build_tokenizer`); config.json's vocabulary
    and bos/eos ids are always those of the tokenizer written.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    special_tokens = special_tokens or default_special_tokens(arch, release=release_tokenizer)
    tok = write_tokenizer(
        out_dir,
        arch=arch,
        added_tokens=added_tokens,
        special_tokens=special_tokens,
        release=release_tokenizer,
        added_special=added_special,
        bpe_vocab=bpe_vocab,
        max_position=size["max_position"],
    )
    n_tok = tok.get_vocab_size(with_added_tokens=True)
    vocab_size = size.get("vocab_size") or -(-n_tok // 64) * 64
    if vocab_size < n_tok:
        raise ValueError(f"vocab_size {vocab_size} is smaller than the tokenizer ({n_tok} tokens)")

    eos = special_tokens.get("eos_token")
    if not isinstance(eos, str):
        raise ValueError(f"special_tokens needs an eos_token string, got {eos!r}")
    bos_id = token_id(tok, special_tokens.get("bos_token") or eos)
    _dump(out_dir / "config.json", _hf_config(arch, size, vocab_size, bos_id, token_id(tok, eos), dtype))

    torch_dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
    shapes = _tensor_shapes(arch, size, vocab_size)
    gen = torch.Generator().manual_seed(seed)
    tensors = (_random_tensor(name, shape, gen, torch_dtype) for name, shape in shapes)
    itemsize = _ST_DTYPES[torch_dtype][1]
    shards = _split(shapes, shard_bytes, itemsize) if shard_bytes else [shapes]
    if len(shards) == 1:
        _write_safetensors(out_dir / "model.safetensors", shapes, tensors, torch_dtype)
        return out_dir
    weight_map = {}
    for n, shard in enumerate(shards, start=1):
        fname = f"model-{n:05d}-of-{len(shards):05d}.safetensors"
        _write_safetensors(out_dir / fname, shard, (next(tensors) for _ in shard), torch_dtype)
        weight_map.update({name: fname for name, _ in shard})
    total = sum(math.prod(s) for _, s in shapes) * itemsize
    _dump(out_dir / "model.safetensors.index.json", {"metadata": {"total_size": total}, "weight_map": weight_map})
    return out_dir


def _split(shapes: list[tuple[str, tuple[int, ...]]], shard_bytes: int, itemsize: int) -> list[list[tuple[str, tuple[int, ...]]]]:
    shards: list[list[tuple[str, tuple[int, ...]]]] = [[]]
    used = 0
    for name, shape in shapes:
        nbytes = math.prod(shape) * itemsize
        if shards[-1] and used + nbytes > shard_bytes:
            shards.append([])
            used = 0
        shards[-1].append((name, shape))
        used += nbytes
    return shards


def _dump(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n")
