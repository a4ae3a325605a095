"""The random LLM writer produces directories that look like the real releases: transformers and
safetensors read them with no missing or unexpected piece, tokens resolve by string."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import transformers
from safetensors import safe_open

from fasttts.errors import ModelLoadError
from fasttts.models.random_llm import (
    ORPHEUS_LLAMA_FULL,
    ORPHEUS_LLAMA_TINY,
    SPARK_QWEN2_FULL,
    SPARK_QWEN2_TINY,
    default_special_tokens,
    load_tokenizer,
    token_id,
    write_random_llm,
)

ADDED = ["<|bicodec_semantic_0|>", "<|bicodec_semantic_1|>", "<custom_token_0>", "<custom_token_1>"]


@pytest.fixture(scope="module")
def qwen_dir(tmp_path_factory) -> Path:
    return write_random_llm(tmp_path_factory.mktemp("qwen"), arch="qwen2", size=SPARK_QWEN2_TINY, added_tokens=ADDED, seed=3)


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory) -> Path:
    return write_random_llm(tmp_path_factory.mktemp("llama"), arch="llama", size=ORPHEUS_LLAMA_TINY, added_tokens=ADDED, seed=3)


def _tensors(path: Path) -> dict[str, torch.Tensor]:
    with safe_open(str(path), framework="pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}


def test_qwen2_directory_has_the_release_files(qwen_dir: Path) -> None:
    names = {p.name for p in qwen_dir.iterdir()}
    assert names == {
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "vocab.json",
        "merges.txt",
        "added_tokens.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
    }
    cfg = json.loads((qwen_dir / "config.json").read_text())
    assert cfg["architectures"] == ["Qwen2ForCausalLM"] and cfg["model_type"] == "qwen2"
    assert cfg["tie_word_embeddings"] is True and cfg["rope_theta"] == 1e6
    assert cfg["vocab_size"] >= load_tokenizer(qwen_dir).get_vocab_size() and cfg["vocab_size"] % 64 == 0
    added = json.loads((qwen_dir / "added_tokens.json").read_text())
    assert set(ADDED) | {"<|endoftext|>", "<|im_start|>", "<|im_end|>"} <= set(added)
    assert (qwen_dir / "merges.txt").read_text().startswith("#version")


@pytest.mark.parametrize("which", ["qwen", "llama"])
def test_transformers_loads_every_tensor(which: str, qwen_dir: Path, llama_dir: Path) -> None:
    model_dir = qwen_dir if which == "qwen" else llama_dir
    cls = transformers.Qwen2ForCausalLM if which == "qwen" else transformers.LlamaForCausalLM
    model, info = cls.from_pretrained(model_dir, dtype=torch.float32, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]  # sets in transformers 5
    written = _tensors(model_dir / "model.safetensors")
    state = model.state_dict()
    for name, tensor in written.items():
        assert torch.equal(state[name], tensor), name


@pytest.mark.parametrize("which", ["qwen", "llama"])
def test_transformers_tokenizer_agrees_with_tokenizers(which: str, qwen_dir: Path, llama_dir: Path) -> None:
    model_dir = qwen_dir if which == "qwen" else llama_dir
    hf = transformers.AutoTokenizer.from_pretrained(model_dir)
    tok = load_tokenizer(model_dir)
    text = "Hello, world! She sells sea shells.<|bicodec_semantic_1|><custom_token_0>"
    assert hf(text)["input_ids"] == tok.encode(text).ids
    assert tok.decode(tok.encode("The quick brown fox.").ids, skip_special_tokens=True) == "The quick brown fox."
    assert hf.eos_token == default_special_tokens("qwen2" if which == "qwen" else "llama")["eos_token"]


def test_llama_tokenizer_prepends_begin_of_text(llama_dir: Path) -> None:
    tok = load_tokenizer(llama_dir)
    ids = tok.encode("tara: hello").ids
    assert ids[0] == token_id(tok, "<|begin_of_text|>") and ids.count(ids[0]) == 1
    cfg = json.loads((llama_dir / "config.json").read_text())
    assert cfg["rope_scaling"]["rope_type"] == "llama3" and cfg["bos_token_id"] == ids[0]
    assert cfg["eos_token_id"] == token_id(tok, "<|eot_id|>")


def test_added_tokens_resolve_to_single_distinct_ids(qwen_dir: Path) -> None:
    tok = load_tokenizer(qwen_dir)
    ids = [token_id(tok, t) for t in ADDED]
    assert len(set(ids)) == len(ADDED)
    assert tok.encode("".join(ADDED)).ids == ids
    with pytest.raises(ModelLoadError, match="no_such_token"):
        token_id(tok, "<|no_such_token|>")


def test_load_tokenizer_without_file_raises(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="tokenizer.json"):
        load_tokenizer(tmp_path)


def test_weights_depend_on_seed_only(tmp_path: Path) -> None:
    a = _tensors(write_random_llm(tmp_path / "a", arch="qwen2", size=SPARK_QWEN2_TINY, seed=7) / "model.safetensors")
    b = _tensors(write_random_llm(tmp_path / "b", arch="qwen2", size=SPARK_QWEN2_TINY, seed=7) / "model.safetensors")
    c = _tensors(write_random_llm(tmp_path / "c", arch="qwen2", size=SPARK_QWEN2_TINY, seed=8) / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["model.embed_tokens.weight"], c["model.embed_tokens.weight"])
    assert "lm_head.weight" not in a  # tied, as in Qwen2.5-0.5B
    assert "model.layers.0.self_attn.q_proj.bias" in a


def test_sharded_checkpoint_with_index(tmp_path: Path) -> None:
    size = {**ORPHEUS_LLAMA_TINY, "tie_word_embeddings": False}
    out = write_random_llm(tmp_path, arch="llama", size=size, seed=1, dtype="bfloat16", shard_bytes=40_000)
    index = json.loads((out / "model.safetensors.index.json").read_text())
    files = sorted(set(index["weight_map"].values()))
    assert len(files) > 1 and not (out / "model.safetensors").exists()
    found = {}
    for f in files:
        found.update(_tensors(out / f))
    assert set(found) == set(index["weight_map"]) and "lm_head.weight" in found
    assert all(t.dtype == torch.bfloat16 for t in found.values())
    assert index["metadata"]["total_size"] == sum(t.numel() * 2 for t in found.values())
    _model, info = transformers.LlamaForCausalLM.from_pretrained(out, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]


def test_vocab_size_smaller_than_tokenizer_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="smaller than the tokenizer"):
        write_random_llm(tmp_path, arch="qwen2", size={**SPARK_QWEN2_TINY, "vocab_size": 64}, seed=0)


def test_full_presets_match_the_published_shapes() -> None:
    assert (SPARK_QWEN2_FULL["hidden"], SPARK_QWEN2_FULL["layers"], SPARK_QWEN2_FULL["heads"], SPARK_QWEN2_FULL["kv_heads"]) == (896, 24, 14, 2)
    assert SPARK_QWEN2_FULL["vocab_size"] == 166000 and SPARK_QWEN2_FULL["tie_word_embeddings"]
    assert (ORPHEUS_LLAMA_FULL["hidden"], ORPHEUS_LLAMA_FULL["layers"], ORPHEUS_LLAMA_FULL["heads"], ORPHEUS_LLAMA_FULL["kv_heads"]) == (3072, 28, 24, 8)
    assert ORPHEUS_LLAMA_FULL["vocab_size"] == 156940 and ORPHEUS_LLAMA_FULL["rope_scaling"]["rope_type"] == "llama3"
