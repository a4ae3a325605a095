"""The ``llama-cpp`` backend: a GGUF beside the LLM, many requests decoded together in one context.

Built on llama.cpp's low-level API (``llama_cpp``'s ctypes bindings), not the one-request-at-a-time
``Llama`` class: one context with a unified KV cache holds up to ``batch_size`` sequences (one
llama.cpp sequence id each), and a dedicated thread runs iteration-level scheduling: every step
is one ``llama_decode`` of a single ``llama_batch`` holding the next token of every generating
sequence plus prompt chunks of newcomers, so requests join and leave between steps. Sampling is
ours (:class:`~fasttts.backends._constraint_utils.NumpySampler`) on the raw logits, so every
option and the request's :class:`~fasttts.backends.base.TokenConstraint` apply at every step.

KV memory is reserved per request (prompt + ``max_tokens``) on admission; a request that does not
fit yet waits, so decoding never runs out of KV cells. A cancelled or finished request's cells
are freed at once with ``llama_memory_seq_rm``.

When the model declares its output vocabulary (``BackendConfig.output_ids``), the context runs a
GGUF derived with an LM head of those rows only (:mod:`fasttts.backends.gguf_head`), and every
input token enters as its embedding row: for Spark that drops 153,700 of 166,000 head rows, the
largest single cost of a decode step.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
from collections import deque
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fasttts.backends._constraint_utils import NumpySampler, allowed_ids
from fasttts.backends.base import GenerationRequest, check_request
from fasttts.backends.engine_thread import END, Delivery, EngineThread, EngineThreadBackend, ThreadRequest, stream
from fasttts.backends.gguf_head import EmbeddingTable, head_gguf, require_gguf
from fasttts.backends.registry import BackendConfig
from fasttts.errors import BackendError, MissingExtraError, ModelLoadError

__all__ = ["LlamaCppBackend", "find_gguf", "gguf_file_type"]

logger = logging.getLogger(__name__)

_PREFERENCE = ("Q4_K_M", "Q8_0", "F16", "BF16", "F32")  # fastest on CPU first
_DTYPE_QUANT = {"float16": "F16", "bfloat16": "BF16", "float32": "F32", "int8": "Q8_0"}  # int8: the 8-bit GGUF


def _import_llama_cpp() -> Any:
    try:
        import llama_cpp
    except ImportError:
        raise MissingExtraError("llama-cpp-python", "llama-cpp") from None
    native = logging.getLogger("llama-cpp-python")  # the bindings print llama.cpp's log below this level
    if native.level == logging.NOTSET:
        native.setLevel(logging.WARNING)
    return llama_cpp


def gguf_file_type(path: str | Path) -> str:
    """The quantisation a GGUF file declares (``general.file_type``), e.g. ``"Q4_K_M"``."""
    require_gguf()
    import gguf

    field = gguf.GGUFReader(str(path)).get_field("general.file_type")
    if field is None:
        return "unknown"
    return gguf.LlamaFileType(int(field.contents())).name.removeprefix("MOSTLY_").removeprefix("ALL_")


def find_gguf(model_dir: str | Path, dtype: str = "auto") -> Path:
    """The GGUF to load: ``model_dir`` itself if it is one, else the ``*.gguf`` beside the LLM whose
    quantisation ``dtype`` names (``Q4_K_M``, ``Q8_0``, ``F16``, ``float16``, ...), else the first
    of Q4_K_M, Q8_0, F16, BF16, F32 present."""
    path = Path(model_dir)
    if path.suffix == ".gguf" and path.is_file():
        return path
    files = sorted(path.glob("*.gguf")) if path.is_dir() else []
    if not files:
        raise ModelLoadError(f"no *.gguf file in {path}; write one with: python -m fasttts.models.gguf {path} --quant Q4_K_M")
    types = {f: gguf_file_type(f) for f in files}
    wanted = _DTYPE_QUANT.get(dtype.lower(), dtype.upper())
    if dtype.lower() != "auto":
        match = [f for f, t in types.items() if t == wanted]
        if not match:
            raise ModelLoadError(f"no {wanted} GGUF in {path} (found: {', '.join(f'{f.name} ({t})' for f, t in types.items())})")
        return match[0]
    return min(files, key=lambda f: _PREFERENCE.index(types[f]) if types[f] in _PREFERENCE else len(_PREFERENCE))


@dataclass(eq=False, kw_only=True)
class _Seq(ThreadRequest):
    """One request inside the engine thread."""

    sampler: NumpySampler
    limit: int  # max_tokens, clipped to the context
    seq_id: int | None = None
    n_past: int = 0  # tokens already in the KV cache

    @property
    def reserved(self) -> int:
        return len(self.request.prompt_ids) + self.limit


@dataclass
class LlamaCppStats:
    """Counters proving (and measuring) batching."""

    decode_calls: int = 0
    sampled_tokens: int = 0
    max_batch: int = 0  # most sequences that got a token from one llama_decode
    finished: int = 0
    cancelled: int = 0


class _Engine(EngineThread[_Seq]):
    """Owns the llama.cpp model, context and batch; every decode happens on its thread."""

    name = "llama-cpp"

    def __init__(self, path: Path, config: BackendConfig, n_threads: int, n_batch: int) -> None:
        ll = self.ll = _import_llama_cpp()
        ll.llama_backend_init()
        self.table: EmbeddingTable | None = None  # inputs as embeddings, for a cut LM head
        self.row_ids: np.ndarray | None = None  # the id of each logits row, when cut
        if config.output_ids is not None:
            table = EmbeddingTable(path)
            row_ids = allowed_ids(config.output_ids, table.vocab_size)
            if len(row_ids) < table.vocab_size:
                path = head_gguf(path, row_ids)
                self.table, self.row_ids = table, row_ids
                logger.info("llama-cpp: LM head cut to the model's %d output ids (of %d): %s", len(row_ids), table.vocab_size, path)
        mparams = ll.llama_model_default_params()
        mparams.n_gpu_layers = 0 if config.device == "cpu" else 999
        if _uses_amx(ll):
            # ggml's AMX weight repacking crashes in its first matmul on K-quants (llama.cpp#20824,
            # seen here with Q4_K_M on a Xeon with AMX); the plain CPU buffers run (29 tok/s there)
            logger.info("llama-cpp: this llama.cpp build uses AMX; loading without its repacked weight buffers (llama.cpp#20824)")
            mparams.use_extra_bufts = False
        self.model = ll.llama_model_load_from_file(str(path).encode(), mparams)
        if not self.model:
            raise ModelLoadError(f"llama.cpp could not load {path}")
        self.n_rows = ll.llama_vocab_n_tokens(ll.llama_model_get_vocab(self.model))  # logits per row
        self.n_vocab = self.table.vocab_size if self.table is not None else self.n_rows  # valid input ids
        self.n_seq = max(1, min(config.batch_size, 256))  # llama.cpp's LLAMA_MAX_SEQ
        n_batch = max(n_batch, self.n_seq)  # room for one token of every sequence
        cparams = ll.llama_context_default_params()
        cparams.n_ctx = min(config.max_length, ll.llama_model_n_ctx_train(self.model))
        cparams.n_batch = cparams.n_ubatch = n_batch
        cparams.n_seq_max = self.n_seq
        cparams.kv_unified = True  # one pool of KV cells shared by every sequence
        cparams.n_threads = cparams.n_threads_batch = n_threads
        cparams.no_perf = True
        self.ctx = ll.llama_init_from_model(self.model, cparams)
        if not self.ctx:
            ll.llama_model_free(self.model)
            raise ModelLoadError(f"llama.cpp could not create a context for {path}")
        self.n_ctx = ll.llama_n_ctx(self.ctx)
        self.n_batch = n_batch
        self.memory = ll.llama_get_memory(self.ctx)
        self.batch = ll.llama_batch_init(n_batch, self.table.dim if self.table is not None else 0, 1)
        self.stats = LlamaCppStats()
        self._tokens: list[int] = []  # the ids of the batch being built
        self._waiting: deque[_Seq] = deque()  # not admitted yet (no sequence id / KV reservation)
        self._active: list[_Seq] = []  # admitted: prefilling or generating
        self._free_ids = list(range(self.n_seq))
        self._reserved = 0
        super().__init__()
        self.start()

    def close(self) -> None:
        ll = self.ll
        ll.llama_batch_free(self.batch)
        ll.llama_free(self.ctx)
        ll.llama_model_free(self.model)

    # ------------------------------------------------------------------ engine thread
    def admit(self, newcomers: list[_Seq]) -> None:
        self._waiting.extend(newcomers)

    def requests(self) -> list[_Seq]:
        return [*self._waiting, *self._active]

    def release(self, seq: _Seq) -> None:
        if seq in self._waiting:
            self._waiting.remove(seq)
        if seq in self._active:  # free its KV cells and sequence id
            self._active.remove(seq)
            assert seq.seq_id is not None  # given on admission
            self.ll.llama_memory_seq_rm(self.memory, seq.seq_id, -1, -1)
            self._free_ids.append(seq.seq_id)
            self._reserved -= seq.reserved

    def step(self, out: list[tuple[_Seq, Delivery]]) -> None:
        for seq in [s for s in self.requests() if s.cancelled]:
            self.stats.cancelled += 1
            self.retire(seq)
        while self._waiting and self._free_ids and self._reserved + self._waiting[0].reserved <= self.n_ctx:
            seq = self._waiting.popleft()
            seq.seq_id = self._free_ids.pop()
            self._reserved += seq.reserved
            self._active.append(seq)
        self._decode(out)

    def _decode(self, out: list[tuple[_Seq, Delivery]]) -> None:
        """One llama_decode: the next token of every generating sequence, then prompt chunks."""
        b, n, rows = self.batch, 0, []
        self._tokens.clear()
        for seq in self._active:
            if seq.generated:  # generating: feed back the last sampled token
                n = self._put(n, seq.generated[-1], seq, logits=True)
                rows.append((n - 1, seq))
        for seq in self._active:
            prompt = seq.request.prompt_ids
            while not seq.generated and seq.n_past < len(prompt) and n < self.n_batch:
                last = seq.n_past == len(prompt) - 1
                n = self._put(n, prompt[seq.n_past], seq, logits=last)
                if last:
                    rows.append((n - 1, seq))
        if n == 0:
            return
        b.n_tokens = n
        if self.table is None:
            for i, token in enumerate(self._tokens):
                b.token[i] = token
        else:
            np.ctypeslib.as_array(b.embd, shape=(n, self.table.dim))[:] = self.table.rows(self._tokens)
        rc = self.ll.llama_decode(self.ctx, b)
        if rc != 0:
            raise BackendError(f"llama_decode returned {rc}")
        self.stats.decode_calls += 1
        self.stats.max_batch = max(self.stats.max_batch, len(rows))
        for i, seq in rows:
            logits = np.ctypeslib.as_array(self.ll.llama_get_logits_ith(self.ctx, i), shape=(self.n_rows,))
            self._sample(seq, logits, out)

    def _put(self, n: int, token: int, seq: _Seq, *, logits: bool) -> int:
        b = self.batch
        self._tokens.append(token)
        b.pos[n], b.n_seq_id[n], b.logits[n] = seq.n_past, 1, logits
        b.seq_id[n][0] = seq.seq_id
        seq.n_past += 1
        return n + 1

    def _sample(self, seq: _Seq, logits: np.ndarray, out: list[tuple[_Seq, Delivery]]) -> None:
        req = seq.request
        ranges = req.constraint.allowed(seq.generated) if req.constraint is not None else None
        token = seq.sampler.sample(logits, ranges, self.row_ids)
        seq.generated.append(token)
        self.stats.sampled_tokens += 1
        out.append((seq, token))
        done = token in req.stop_ids or len(seq.generated) >= seq.limit or (req.constraint is not None and req.constraint.is_complete(seq.generated))
        if done:
            out.append((seq, END))
            self.stats.finished += 1
            self.retire(seq)


def _uses_amx(ll: Any) -> bool:
    """This llama.cpp build was compiled with AMX (which its CPU backend then uses where the CPU has it)."""
    return "AMX_INT8 = 1" in ll.llama_print_system_info().decode(errors="replace")


class LlamaCppBackend(EngineThreadBackend[_Engine]):
    """``Class(BackendConfig)``; ``n_threads`` defaults to the CPUs this process may use."""

    name = "llama-cpp"

    def __init__(self, config: BackendConfig, *, n_threads: int | None = None, n_batch: int = 512) -> None:
        _import_llama_cpp()  # fail early, with the extra to install
        super().__init__()
        self.config = config
        self.n_threads = n_threads or len(os.sched_getaffinity(0))
        self.n_batch = n_batch
        self._seeds = random.Random(config.seed)  # seeds for requests that bring none

    def _build(self) -> _Engine:
        return _Engine(find_gguf(self.config.model_dir, self.config.dtype), self.config, self.n_threads, self.n_batch)

    @property
    def stats(self) -> LlamaCppStats:
        return self._engine.stats if self._engine is not None else LlamaCppStats()

    async def generate(self, request: GenerationRequest) -> AsyncGenerator[int, None]:
        engine = await self._running()
        check_request(request, max_length=engine.n_ctx, vocab_size=engine.n_vocab)
        limit = min(request.max_tokens, engine.n_ctx - len(request.prompt_ids))
        if limit <= 0:
            return
        seed = request.seed if request.seed is not None else self._seeds.getrandbits(63)
        sampler = NumpySampler(
            temperature=request.temperature,
            top_k=request.top_k,
            top_p=request.top_p,
            repetition_penalty=request.repetition_penalty,
            seed=seed,
            prompt_ids=request.prompt_ids,
        )
        async with contextlib.aclosing(stream(engine, _Seq(request=request, sampler=sampler, limit=limit))) as tokens:
            async for token in tokens:
                yield token
