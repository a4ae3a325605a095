"""Full-size random models carry the releases' tokenizers: the control and audio tokens sit at the
ids the manifests give (../shared/model-formats/spark.md, orpheus.md, mega.md §5), and text encodes
to exactly what the release's BPE gives. The reference encodings come from the packages that ship
the rank files (``llama_models``' and ``dashscope``'s own tiktoken tokenizers), not from us."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from dashscope.tokenizers.qwen_tokenizer import QwenTokenizer
from llama_models.llama3.tokenizer import Tokenizer as Llama3Tokenizer
from tokenizers import Tokenizer

from fasttts.models import release_tokenizers
from fasttts.models.orpheus.random_model import RELEASE_CUSTOM_TOKENS, write_orpheus_tokenizer
from fasttts.models.random_llm import (
    MEGA_G2P_ADDED_TOKENS,
    ORPHEUS_LLAMA_FULL,
    ORPHEUS_LLAMA_TINY,
    SPARK_QWEN2_FULL,
    load_tokenizer,
    write_g2p_tokenizer,
    write_random_llm,
)
from fasttts.models.release_tokenizers import rank_file
from fasttts.models.spark.random_model import write_spark_tokenizer
from fasttts.models.spark.tokens import SPARK_ADDED_TOKENS

TEXTS = [
    "Hello there! How are you today? I'm fine, thanks -- and you?",
    "Numbers: 1, 22, 333, 4444, 55555 and 3.14159; prices $4.99.",
    "今天天气很好，我们一起去公园散步吧。你觉得怎么样？",
    "Café déjà vu: naïve façade, crème brûlée, Ærøskøbing, Dvořák, São Paulo.",
    "Cafe\u0301 written with a combining accent, and \t tabs\n\nnew lines   spaces.",
    "Привет, как дела? Καλημέρα. 🙂 emoji <laugh> tags",
]


@pytest.fixture(scope="module")
def orpheus_tok(tmp_path_factory) -> tuple[Path, Tokenizer]:
    out = tmp_path_factory.mktemp("orpheus")
    write_orpheus_tokenizer(out, size="full")
    return out, load_tokenizer(out)  # what the loaders read: the file written


@pytest.fixture(scope="module")
def spark_tok(tmp_path_factory) -> tuple[Path, Tokenizer]:
    out = tmp_path_factory.mktemp("spark")
    write_spark_tokenizer(out, size="full")
    return out, load_tokenizer(out)


def test_orpheus_tokens_sit_at_the_release_ids(orpheus_tok) -> None:
    _, tok = orpheus_tok
    assert tok.get_vocab_size() == 128_256 + RELEASE_CUSTOM_TOKENS == ORPHEUS_LLAMA_FULL["vocab_size"] == 156_940
    assert tok.token_to_id("<|begin_of_text|>") == 128000 and tok.token_to_id("<|eot_id|>") == 128009
    # the prompt's and the stop's control tokens (orpheus.md) and every audio token
    for n, expected in [(1, 128257), (2, 128258), (3, 128259), (4, 128260), (5, 128261), (6, 128262)]:
        assert tok.token_to_id(f"<custom_token_{n}>") == expected
    assert all(tok.token_to_id(f"<custom_token_{n}>") == 128256 + n for n in range(RELEASE_CUSTOM_TOKENS))
    # Llama 3's named specials where the llama-models package puts them (its vision-era list
    # renames the reserved slots 128005 and 128011, so reserved names are numbered differently)
    reference = Llama3Tokenizer(rank_file("llama")).special_tokens
    named = [t for t in reference if "reserved" not in t and t in release_tokenizers.LLAMA3_SPECIALS]
    assert len(named) == 8 and all(tok.token_to_id(t) == reference[t] for t in named)
    assert sorted(tok.token_to_id(t) for t in release_tokenizers.LLAMA3_SPECIALS) == list(range(128000, 128256))


def test_spark_tokens_sit_at_the_release_ids(spark_tok) -> None:
    _, tok = spark_tok
    assert tok.get_vocab_size() == 151_643 + 22 + len(SPARK_ADDED_TOKENS) <= SPARK_QWEN2_FULL["vocab_size"]
    assert [tok.token_to_id(t) for t in ("<|endoftext|>", "<|im_start|>", "<|im_end|>")] == [151643, 151644, 151645]
    assert tok.token_to_id("<|bicodec_global_0|>") == 151665 and tok.token_to_id("<|bicodec_semantic_0|>") == 155761
    assert all(tok.token_to_id(t) == 151665 + i for i, t in enumerate(SPARK_ADDED_TOKENS))
    # Spark's added tokens are not special: the official code decodes with skip_special_tokens
    assert tok.decode([151665, 155761], skip_special_tokens=True) == "<|bicodec_global_0|><|bicodec_semantic_0|>"


def test_g2p_tokens_sit_at_the_release_ids(tmp_path) -> None:
    write_g2p_tokenizer(tmp_path)
    tok = load_tokenizer(tmp_path)
    assert tok.token_to_id("<BOT>") == 151665 and tok.token_to_id("<BOS>") == 151666
    reserved = tok.token_to_id("<Reserved_TTS_0>")
    assert reserved == 151667 and reserved + 801 == 152468  # FlashTTS's hard-coded stop id
    assert tok.get_vocab_size() == 168_867 == 151_665 + len(MEGA_G2P_ADDED_TOKENS)
    # the files transformers writes for this tokenizer have the release's sizes (mega.md §5)
    sizes = {name: (tmp_path / name).stat().st_size for name in ("merges.txt", "vocab.json", "added_tokens.json")}
    assert sizes == {"merges.txt": 1_671_853, "vocab.json": 2_776_833, "added_tokens.json": 574_333}


@pytest.mark.parametrize("text", TEXTS)
def test_text_encodes_as_the_release_bpe(text: str, orpheus_tok, spark_tok) -> None:
    llama = Llama3Tokenizer(rank_file("llama"))
    assert orpheus_tok[1].encode(text).ids == llama.encode(text, bos=True, eos=False)
    qwen = QwenTokenizer(str(rank_file("qwen2")))
    assert spark_tok[1].encode(text).ids == qwen.encode(text, allowed_special=set())


def test_transformers_reads_the_same_ids(orpheus_tok, spark_tok) -> None:
    transformers = pytest.importorskip("transformers")
    for out, tok in (orpheus_tok, spark_tok):
        hf = transformers.AutoTokenizer.from_pretrained(out)
        assert hf(TEXTS[3])["input_ids"] == tok.encode(TEXTS[3]).ids


def test_config_agrees_with_the_release_tokenizer(tmp_path) -> None:
    """A (tiny-shaped) model written with the release tokenizer: vocabulary and bos/eos match it."""
    out = write_random_llm(tmp_path, arch="llama", size=ORPHEUS_LLAMA_TINY, added_tokens=["<custom_token_0>"], release_tokenizer=True)
    cfg = json.loads((out / "config.json").read_text())
    tok = load_tokenizer(out)
    assert cfg["vocab_size"] >= tok.get_vocab_size() == 128_257
    assert (cfg["bos_token_id"], cfg["eos_token_id"]) == (128000, 128009)


def test_without_the_rank_file_a_small_tokenizer_is_written_and_logged(tmp_path, monkeypatch, caplog) -> None:
    monkeypatch.setitem(release_tokenizers.RANK_FILES, "qwen2", ("fasttts_no_such_package", "x.tiktoken", "dashscope"))
    with caplog.at_level(logging.INFO, logger="fasttts.models.random_llm"):
        tok = write_spark_tokenizer(tmp_path, size="full")
    assert tok.get_vocab_size() < 20_000 and tok.token_to_id("<|bicodec_global_0|>") is not None
    assert any(r.levelno == logging.WARNING and "dashscope is not installed" in r.getMessage() for r in caplog.records)
