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

from conformance import Conformance, tiny_spark_llm  # noqa: E402
from fasttts.backends._constraint_utils import NumpySampler, allowed_mask  # noqa: E402
from fasttts.backends.llama_cpp_backend import LlamaCppBackend, find_gguf, gguf_file_type  # noqa: E402
from fasttts.backends.registry import BackendConfig, create_backend  # noqa: E402
from fasttts.errors import ModelLoadError  # noqa: E402
from fasttts.models.gguf import find_converter, quantize_gguf, write_gguf  # noqa: E402
from fasttts.models.random_llm import load_tokenizer  # noqa: E402


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


@pytest.mark.asyncio(loop_scope="session")
async def test_requests_wait_for_kv_room_instead_of_failing(ggufs: dict[str, Path]) -> None:
    """A context of 512 cells and requests reserving 300 each: they run one after the other."""
    from conformance import SparkPrompts, collect

    spark = SparkPrompts(ggufs["dir"])
    backend = LlamaCppBackend(BackendConfig(model_dir=str(ggufs["dir"]), device="cpu", max_length=512, batch_size=4))
    try:
        ids, _ = spark.create(0)

        outs = await asyncio.gather(*(collect(backend, prompt_ids=ids, max_tokens=300 - len(ids), temperature=1.0, seed=i)
                                      for i in range(3)))
        assert all(len(o) == 300 - len(ids) for o in outs)  # no stop ids: each ran to max_tokens
        assert backend.stats.max_batch == 1
    finally:
        await backend.shutdown()
