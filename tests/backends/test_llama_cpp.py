"""The llama-cpp backend: GGUF writing (llama.cpp's converter + quantiser), fidelity of the GGUF
against transformers, choice of file, the NumPy sampler, and the conformance suite (Q4_K_M)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
import pytest_asyncio

llama_cpp = pytest.importorskip("llama_cpp")
gguf = pytest.importorskip("gguf")
pytestmark = pytest.mark.slow  # starts the backend's own engine

from conformance import Conformance, tiny_spark_llm  # noqa: E402

from fasttts.backends._constraint_utils import NumpySampler, allowed_mask  # noqa: E402
from fasttts.backends.gguf_head import EmbeddingTable, head_gguf  # noqa: E402
from fasttts.backends.llama_cpp_backend import LlamaCppBackend, find_gguf, gguf_file_type  # noqa: E402
from fasttts.backends.registry import BackendConfig, create_backend  # noqa: E402
from fasttts.errors import ModelLoadError  # noqa: E402
from fasttts.models.gguf import find_converter, quantize_gguf, write_gguf  # noqa: E402
from fasttts.models.random_llm import load_tokenizer  # noqa: E402
from fasttts.models.spark.tokens import SparkGrammar, SparkVocab  # noqa: E402


@pytest.fixture(scope="module")
def ggufs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The tiny Spark LLM with F16 (converter), Q8_0 and Q4_K_M (quantiser) GGUFs beside it."""
    try:
        find_converter()
    except ModelLoadError as exc:
        pytest.skip(str(exc))
    llm = tiny_spark_llm(tmp_path_factory)
    files = {q: llm / f"model-{q}.gguf" for q in ("F16", "Q8_0", "Q4_K_M")}
    if not files["F16"].is_file():
        write_gguf(llm, "F16")
    for q in ("Q8_0", "Q4_K_M"):
        if not files[q].is_file():
            quantize_gguf(files["F16"], q)
    return {**files, "dir": llm}


# ----------------------------------------------------------------------------- GGUF files
def test_gguf_files_declare_their_quantisation_and_the_vocabulary(ggufs: dict[str, Path]) -> None:
    for quant in ("F16", "Q8_0", "Q4_K_M"):
        assert gguf_file_type(ggufs["dir"] / f"model-{quant}.gguf") == quant
    reader = gguf.GGUFReader(str(ggufs["F16"]))
    assert reader.get_field("general.architecture").contents() == "qwen2"
    tokens = reader.get_field("tokenizer.ggml.tokens").contents()
    config = json.loads((ggufs["dir"] / "config.json").read_text())
    assert len(tokens) == config["vocab_size"]
    tok = load_tokenizer(ggufs["dir"])
    for s in ("<|bicodec_semantic_0|>", "<|bicodec_global_4095|>", "<|im_end|>", "<|start_semantic_token|>"):
        assert tokens[tok.token_to_id(s)] == s  # same ids as the HF tokenizer


def test_f16_logits_match_transformers(ggufs: dict[str, Path]) -> None:
    import torch
    import transformers

    ids = load_tokenizer(ggufs["dir"]).encode("Hello, world! This is a test.").ids
    ref = transformers.Qwen2ForCausalLM.from_pretrained(ggufs["dir"], dtype=torch.float32).eval()
    with torch.inference_mode():
        want = ref(torch.tensor([ids])).logits[0].numpy()  # [T, V]
    llm = llama_cpp.Llama(model_path=str(ggufs["F16"]), n_ctx=128, logits_all=True, verbose=False, n_threads=2)
    llm.eval(ids)
    got = np.asarray(llm.scores[: len(ids)])
    llm.close()
    assert got.shape == want.shape
    assert np.abs(got - want).max() < 0.05 * np.abs(want).max()  # float16 weights
    assert (got.argmax(-1) == want.argmax(-1)).mean() > 0.8


def test_the_backend_picks_a_gguf_by_dtype_or_speed(ggufs: dict[str, Path]) -> None:
    d = ggufs["dir"]
    assert find_gguf(d) == d / "model-Q4_K_M.gguf"
    assert find_gguf(d, "F16") == find_gguf(d, "float16") == d / "model-F16.gguf"
    assert find_gguf(d / "model-Q8_0.gguf", "F16") == d / "model-Q8_0.gguf"  # a file is taken as given
    with pytest.raises(ModelLoadError, match="no BF16 GGUF"):
        find_gguf(d, "bf16")
    with pytest.raises(ModelLoadError, match="no \\*.gguf"):
        find_gguf(d / "nowhere")


# ----------------------------------------------------------------------------- the cut LM head
def _spark_output_ids(llm_dir: Path) -> np.ndarray:
    vocab = SparkVocab.from_tokenizer(load_tokenizer(llm_dir))
    return np.concatenate([np.arange(lo, hi) for lo, hi in SparkGrammar(vocab, "create").vocabulary()])


def test_a_cut_head_gguf_keeps_the_output_rows_and_everything_else(ggufs: dict[str, Path], tmp_path: Path) -> None:
    ids = _spark_output_ids(ggufs["dir"])
    src = gguf.GGUFReader(str(ggufs["Q4_K_M"]))
    vocab = src.get_field("tokenizer.ggml.tokens")
    assert 0 < len(ids) < len(vocab.data)
    path = head_gguf(ggufs["Q4_K_M"], ids, tmp_path)
    cut = gguf.GGUFReader(str(path))
    assert cut.get_field("tokenizer.ggml.model").contents() == "none"
    assert cut.get_field("qwen2.vocab_size").contents() == len(ids)
    assert cut.get_field("tokenizer.ggml.tokens") is None
    assert cut.get_field("qwen2.block_count").contents() == src.get_field("qwen2.block_count").contents()
    src_tensors = {t.name: t for t in src.tensors}
    assert [t.name for t in cut.tensors] == list(src_tensors)
    for t in cut.tensors:
        want = src_tensors[t.name].data
        assert t.tensor_type == src_tensors[t.name].tensor_type
        np.testing.assert_array_equal(t.data, want[ids] if t.name == "token_embd.weight" else want)
    mtime = path.stat().st_mtime_ns
    assert head_gguf(ggufs["Q4_K_M"], ids, tmp_path) == path and path.stat().st_mtime_ns == mtime  # written once
    assert head_gguf(ggufs["Q4_K_M"], ids[:-1], tmp_path) != path  # another vocabulary, another file
    with pytest.raises(ModelLoadError, match="sorted, unique"):
        head_gguf(ggufs["Q4_K_M"], ids[::-1].copy(), tmp_path)


def test_embedding_rows_are_the_checkpoint_embeddings(ggufs: dict[str, Path]) -> None:
    from safetensors.numpy import load_file

    weights = load_file(str(ggufs["dir"] / "model.safetensors"))
    embed = next(v for k, v in weights.items() if k.endswith("embed_tokens.weight")).astype(np.float32)
    for quant, tol in (("F16", 1e-3), ("Q8_0", 0.02)):
        table = EmbeddingTable(ggufs[quant])
        assert (table.vocab_size, table.dim) == embed.shape
        rows = [0, 5, embed.shape[0] - 1, 5]
        got = table.rows(rows)
        assert got.dtype == np.float32 and got.shape == (4, embed.shape[1])
        assert np.abs(got - embed[rows]).max() <= tol * np.abs(embed).max()


@pytest.mark.asyncio(loop_scope="session")
async def test_a_cut_head_generates_what_the_full_head_generates(ggufs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Same prompts, seeds and grammar: the same tokens, whether the head has 166k rows or the output ones."""
    from conformance import SparkPrompts, collect

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    spark = SparkPrompts(ggufs["dir"])
    base = dict(model_dir=str(ggufs["dir"]), device="cpu", max_length=2048, batch_size=4)
    output_ids = SparkGrammar(spark.vocab, "create").vocabulary()
    results = []
    for config in (BackendConfig(**base), BackendConfig(**base, output_ids=output_ids)):
        backend = LlamaCppBackend(config)
        try:
            prompts = [spark.create(0), spark.create(1), spark.clone(0, with_semantics=True)]
            # one at a time: llama.cpp's float results depend on what shares a batch
            results.append(
                [
                    await collect(
                        backend,
                        prompt_ids=ids,
                        max_tokens=48,
                        temperature=0.9,
                        top_k=40,
                        top_p=0.95,
                        repetition_penalty=1.1,
                        seed=i,
                        stop_ids=spark.vocab.stop_ids,
                        constraint=grammar,
                    )
                    for i, (ids, grammar) in enumerate(prompts)
                ]
            )
            results.append(backend._engine.n_rows)
        finally:
            await backend.shutdown()
    full, full_rows, cut, cut_rows = results
    assert cut == full
    assert cut_rows == len(_spark_output_ids(ggufs["dir"])) < full_rows
    assert list((tmp_path / "fasttts" / "gguf-heads").glob("*.gguf"))  # the derived file went to the cache


# ----------------------------------------------------------------------------- sampler
def test_sampler_masks_penalises_and_filters() -> None:
    logits = np.array([3.0, 2.0, 1.0, -1.0, 0.5], dtype=np.float32)
    greedy = dict(temperature=0.0, top_k=0, top_p=1.0, seed=0)
    assert NumpySampler(repetition_penalty=1.0, prompt_ids=[], **greedy).sample(logits, None) == 0
    assert NumpySampler(repetition_penalty=1.0, prompt_ids=[], **greedy).sample(logits, ((2, 5),)) == 2
    # CTRL penalty: a seen positive logit is divided (3 / 4 < 2), a seen negative one multiplied
    assert NumpySampler(repetition_penalty=4.0, prompt_ids=[0], **greedy).sample(logits, None) == 1
    assert NumpySampler(repetition_penalty=4.0, prompt_ids=[2], **greedy).sample(logits, ((2, 4),)) == 2  # 1/4 > -1*4
    sampler = NumpySampler(repetition_penalty=4.0, prompt_ids=[], **greedy)
    assert [sampler.sample(logits, None) for _ in range(2)] == [0, 1]  # generated ids count as seen

    def draws(**kw) -> set[int]:
        s = NumpySampler(temperature=1.0, repetition_penalty=1.0, prompt_ids=[], seed=1, **kw)
        return {s.sample(logits, None) for _ in range(200)}

    assert draws(top_k=0, top_p=1.0) == {0, 1, 2, 3, 4}
    assert draws(top_k=2, top_p=1.0) == {0, 1}
    assert draws(top_k=0, top_p=0.5) == {0}  # p(0) = 0.61 >= 0.5
    assert draws(top_k=0, top_p=0.7) == {0, 1}
    a = NumpySampler(temperature=1.0, top_k=0, top_p=1.0, repetition_penalty=1.0, seed=9, prompt_ids=[])
    b = NumpySampler(temperature=1.0, top_k=0, top_p=1.0, repetition_penalty=1.0, seed=9, prompt_ids=[])
    assert [a.sample(logits, None) for _ in range(20)] == [b.sample(logits, None) for _ in range(20)]


def test_sampling_over_a_cut_head_equals_sampling_over_the_full_one() -> None:
    rng = np.random.default_rng(0)
    full = rng.normal(size=100).astype(np.float32)
    row_ids = np.array([3, 4, 5, 40, 41, 90], dtype=np.int64)  # the ids the cut head computes
    cut = full[row_ids]
    ranges = ((4, 6), (41, 95))
    for kw in (dict(temperature=0.0, top_k=0, top_p=1.0), dict(temperature=1.0, top_k=3, top_p=0.9)):
        a = NumpySampler(repetition_penalty=1.3, prompt_ids=[5], seed=4, **kw)
        b = NumpySampler(repetition_penalty=1.3, prompt_ids=[5], seed=4, **kw)
        masked = np.full_like(full, -np.inf)
        masked[row_ids] = cut
        want = [a.sample(masked, ranges) for _ in range(30)]
        assert [b.sample(cut, ranges, row_ids) for _ in range(30)] == want
        assert set(want) <= {4, 5, 41, 90}
    with pytest.raises(ValueError, match="allows no token"):
        NumpySampler(temperature=1.0, top_k=0, top_p=1.0, repetition_penalty=1.0, seed=0, prompt_ids=[]).sample(cut, ((6, 40),), row_ids)


def test_allowed_mask() -> None:
    assert allowed_mask(None, 5) is None
    assert allowed_mask(((0, 1), (3, 9)), 5).tolist() == [True, False, False, True, True]


# ----------------------------------------------------------------------------- conformance
class TestLlamaCppConformance(Conformance):
    @pytest_asyncio.fixture(scope="class", loop_scope="session")
    async def backend(self, ggufs: dict[str, Path]) -> AsyncIterator[LlamaCppBackend]:
        config = BackendConfig(model_dir=str(ggufs["dir"]), device="cpu", max_length=2048, batch_size=8)
        backend = create_backend("llama-cpp", config)
        assert isinstance(backend, LlamaCppBackend)
        await backend.start()
        yield backend
        await backend.shutdown()

    def batched_requests(self, backend: LlamaCppBackend) -> int:
        return backend.stats.max_batch


class TestLlamaCppCutHeadConformance(Conformance):
    """The same contract with the LM head cut to the Spark output vocabulary."""

    @pytest_asyncio.fixture(scope="class", loop_scope="session")
    async def backend(self, ggufs: dict[str, Path]) -> AsyncIterator[LlamaCppBackend]:
        vocab = SparkVocab.from_tokenizer(load_tokenizer(ggufs["dir"]))
        config = BackendConfig(model_dir=str(ggufs["dir"]), device="cpu", max_length=2048, batch_size=8, output_ids=SparkGrammar(vocab, "create").vocabulary())
        backend = LlamaCppBackend(config)
        await backend.start()
        assert backend._engine is not None and backend._engine.table is not None
        yield backend
        await backend.shutdown()

    def batched_requests(self, backend: LlamaCppBackend) -> int:
        return backend.stats.max_batch


@pytest.mark.asyncio(loop_scope="session")
async def test_requests_wait_for_kv_room_instead_of_failing(ggufs: dict[str, Path]) -> None:
    """A context of 512 cells and requests reserving 300 each: they run one after the other."""
    from conformance import SparkPrompts, collect

    spark = SparkPrompts(ggufs["dir"])
    backend = LlamaCppBackend(BackendConfig(model_dir=str(ggufs["dir"]), device="cpu", max_length=512, batch_size=4))
    try:
        ids, _ = spark.create(0)

        outs = await asyncio.gather(*(collect(backend, prompt_ids=ids, max_tokens=300 - len(ids), temperature=1.0, seed=i) for i in range(3)))
        assert all(len(o) == 300 - len(ids) for o in outs)  # no stop ids: each ran to max_tokens
        assert backend.stats.max_batch == 1
    finally:
        await backend.shutdown()
