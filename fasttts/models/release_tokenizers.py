"""The releases' own byte-level BPEs (Llama 3's, Qwen2's), rebuilt from rank files registry wheels ship.

Spark-TTS's LLM tokenizer is Qwen2.5's, Orpheus's is Llama 3.2's and MegaTTS3's g2p tokenizer is
Qwen2.5's again, each plus its own added tokens. Their BPE ranks are published in tiktoken format
inside two PyPI wheels, so a random-weight model can carry the real tokenizer without anything
being downloaded at run time or copied into this repository:

* Llama 3: ``llama_models/llama3/tokenizer.model`` (``llama-models``), 128,000 ranks;
* Qwen2: ``dashscope/resources/qwen.tiktoken`` (``dashscope``), 151,643 ranks.

Both files are read from the installed package when a model is written (the ``bench`` and
``test`` extras install them); :func:`release_bpe` answers ``None`` when a wheel is absent, and
callers fall back to a small BPE. The HF form follows each release's ``tokenizer.json``: Llama 3
was converted by transformers' ``TikTokenConverter`` (every valid split of a token is a merge,
``ignore_merges``), which we call as is; Qwen2's ``merges.txt`` holds exactly one merge per token
(151,387 lines, 1,671,853 bytes), the split tiktoken's own BPE reaches, which
:func:`_qwen2_merges` recovers. Then each family's specials at their release ids: Llama 3's 256
from 128000 (``<|eot_id|>`` 128009), Qwen2.5's 22 from 151643.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterable
from pathlib import Path

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers
from transformers.convert_slow_tokenizer import TikTokenConverter, bytes_to_unicode

__all__ = [
    "LLAMA3_PATTERN",
    "LLAMA3_SPECIALS",
    "QWEN2_PATTERN",
    "QWEN25_ADDED",
    "QWEN25_SPECIAL_TOKENS",
    "add_tokens_in_order",
    "rank_file",
    "release_bpe",
]

QWEN2_PATTERN = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
LLAMA3_PATTERN = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""

RANK_FILES = {
    "llama": ("llama_models", "llama3/tokenizer.model", "llama-models"),
    "qwen2": ("dashscope", "resources/qwen.tiktoken", "dashscope"),
}
"""arch -> (import name, rank file inside the package, distribution name)."""

LLAMA3_SPECIALS: list[str] = [
    "<|begin_of_text|>",
    "<|end_of_text|>",
    "<|reserved_special_token_0|>",
    "<|reserved_special_token_1|>",
    "<|finetune_right_pad_id|>",
    "<|reserved_special_token_2|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|eom_id|>",
    "<|eot_id|>",
    "<|python_tag|>",
] + [f"<|reserved_special_token_{i}|>" for i in range(3, 248)]
"""Llama 3.1/3.2's 256 special tokens (ids 128000-128255) as the HF text releases Orpheus builds on
name them (the ``llama-models`` package's own list renames 128005 and 128011 for its vision models)."""

QWEN25_ADDED: list[tuple[str, bool]] = [
    *((t, True) for t in (
        "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
        "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
        "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>",
    )),
    *((t, False) for t in (
        "<tool_call>", "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>",
        "<|repo_name|>", "<|file_sep|>",
    )),
]  # fmt: skip
"""Qwen2.5's 22 added tokens (ids 151643-151664) with their ``special`` flag."""

QWEN25_SPECIAL_TOKENS: dict[str, object] = {
    "eos_token": "<|endoftext|>",
    "pad_token": "<|endoftext|>",
    "additional_special_tokens": [t for t, special in QWEN25_ADDED if special and t != "<|endoftext|>"],
}
"""Qwen2.5 base's ``special_tokens_map.json`` roles (no bos; eos = pad = ``<|endoftext|>``)."""


def rank_file(arch: str) -> Path | None:
    """The installed rank file of ``arch`` (``llama`` or ``qwen2``), or None when its wheel is absent."""
    package, inner, _ = RANK_FILES[arch]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:  # find_spec does not import the package (dashscope's __init__ is heavy)
        path = Path(root) / inner
        if path.is_file():
            return path
    return None


def release_bpe(arch: str) -> Tokenizer | None:
    """The release's BPE with its normaliser, pre-tokenizer, decoder and family specials at their
    release ids, or None when the rank file is not installed. Added tokens and the post-processor
    are the caller's (they differ per model)."""
    path = rank_file(arch)
    if path is None:
        return None
    if arch == "llama":
        converter = TikTokenConverter(vocab_file=str(path), pattern=LLAMA3_PATTERN, extra_special_tokens=LLAMA3_SPECIALS)  # type: ignore[no-untyped-call]  # transformers leaves __init__ unannotated
        tok = converter.converted()
        tok.post_processor = None
        return tok
    ranks = TikTokenConverter.load_tiktoken_bpe(str(path))
    to_str = _byte_string()
    vocab = {to_str(token): rank for token, rank in ranks.items()}
    tok = Tokenizer(models.BPE(vocab, _qwen2_merges(ranks, to_str), unk_token=None, fuse_unk=False, byte_fallback=False))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN2_PATTERN), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    add_tokens_in_order(tok, QWEN25_ADDED)
    return tok


def add_tokens_in_order(tok: Tokenizer, tokens: Iterable[tuple[str, bool]]) -> None:
    """Append ``(content, special)`` tokens so their ids follow the given order (special and
    normal tokens go through different calls, so runs of each are added in turn)."""
    run: list[AddedToken] = []
    for content, special in tokens:
        if run and run[-1].special != special:
            _add_run(tok, run)
            run = []
        run.append(AddedToken(content, special=special, normalized=False))
    if run:
        _add_run(tok, run)


def _add_run(tok: Tokenizer, run: list[AddedToken]) -> None:
    (tok.add_special_tokens if run[0].special else tok.add_tokens)(run)


def _byte_string() -> Callable[[bytes], str]:
    """GPT-2's bytes -> printable-unicode mapping, the alphabet byte-level BPE files are written in."""
    table: dict[int, str] = bytes_to_unicode()  # type: ignore[no-untyped-call]  # unannotated in transformers
    return lambda b: "".join(table[x] for x in b)


def _qwen2_merges(ranks: dict[bytes, int], to_str: Callable[[bytes], str]) -> list[tuple[str, str]]:
    """One merge per multi-byte token, in rank order: the two parts tiktoken's BPE leaves when it
    encodes the token's bytes with only lower-ranked merges. This is the release's ``merges.txt``
    (transformers' converter instead lists every valid split, 294,166 merges for these ranks)."""
    merges = []
    for token, rank in sorted(ranks.items(), key=lambda kv: kv[1]):
        if len(token) < 2:
            continue
        parts = [token[i : i + 1] for i in range(len(token))]
        while len(parts) > 2:
            best, at = rank, -1
            for i in range(len(parts) - 1):
                r = ranks.get(parts[i] + parts[i + 1])
                if r is not None and r < best:
                    best, at = r, i
            if at < 0:
                break
            parts[at : at + 2] = [parts[at] + parts[at + 1]]
        if len(parts) != 2:
            raise ValueError(f"rank file: token {token!r} (rank {rank}) is not a merge of two lower-ranked tokens")
        merges.append((to_str(parts[0]), to_str(parts[1])))
    return merges
