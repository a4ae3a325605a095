"""A GGUF whose LM head holds only the ids the TTS model can emit, and the embeddings to feed it.

llama.cpp computes every row of the LM head at every step, and a TTS model's vocabulary is mostly
text it never outputs: Spark-TTS's LLM has 166,000 rows, of which synthesis can emit ~12,300 (its
audio-token families and a few markers); in Spark's Q4_K_M GGUF that head (tied with the input
embedding) is 158 of 405 MB. Given the model's output vocabulary
(:attr:`~fasttts.backends.registry.BackendConfig.output_ids`), :func:`head_gguf` derives once, in
a cache, a GGUF whose vocabulary is exactly those ids: ``token_embd`` (and ``output`` when it is
not tied) keep only their rows and the tokenizer becomes llama.cpp's ``none`` with
``<arch>.vocab_size`` set (we never use llama.cpp's tokenizer). Every other tensor and key is
copied byte for byte, so the logits of the kept ids are the ones the full model computes.

Because the derived model cannot look up text tokens, every input enters as an embedding row
taken from the original GGUF's full ``token_embd`` (:class:`EmbeddingTable`, dequantised by
gguf-py: the values llama.cpp's own row lookup produces).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import numpy as np

from fasttts.errors import MissingExtraError, ModelLoadError

__all__ = ["EmbeddingTable", "head_gguf", "require_gguf"]

_TOKENIZER_KEYS = ("tokenizer.",)  # the whole text tokenizer goes: the derived model has none
_HEAD_TENSORS = ("token_embd.weight", "output.weight")


def require_gguf() -> None:
    """Raise :class:`MissingExtraError` naming the extra unless gguf-py is installed. Callers then
    ``import gguf`` themselves (a cached import), so its types are checked where it is used."""
    try:
        import gguf  # noqa: F401
    except ImportError:
        raise MissingExtraError("gguf", "llama-cpp") from None


def _cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "fasttts" / "gguf-heads"


def head_gguf(src: str | Path, ids: np.ndarray, cache_dir: str | Path | None = None) -> Path:
    """The GGUF derived from ``src`` with vocabulary ``ids`` (sorted, unique), written once.

    The file name carries a hash of the source's path, size and mtime and of ``ids``, so a changed
    model or output vocabulary gets a new file; it is written to a temporary name and renamed, so
    concurrent servers never load a half-written file.
    """
    src = Path(src).resolve()
    stat = src.stat()
    key = hashlib.sha256(f"{src}:{stat.st_size}:{stat.st_mtime_ns}".encode() + np.asarray(ids, dtype=np.int64).tobytes())
    out = Path(cache_dir or _cache_dir()) / f"{src.stem}-head{len(ids)}-{key.hexdigest()[:16]}.gguf"
    if out.is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, suffix=".partial")
    os.close(fd)
    try:
        _write(src, np.asarray(ids, dtype=np.int64), Path(tmp))
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out


def _write(src: Path, ids: np.ndarray, out: Path) -> None:
    require_gguf()
    import gguf

    reader = gguf.GGUFReader(str(src))
    arch_field = reader.get_field("general.architecture")
    if arch_field is None:
        raise ModelLoadError(f"{src} has no general.architecture")
    arch = str(arch_field.contents())
    tensors = {t.name: t for t in reader.tensors}
    embd = tensors.get("token_embd.weight")
    if embd is None:
        raise ModelLoadError(f"{src} has no token_embd.weight")
    vocab = int(embd.shape[-1])
    if len(ids) == 0 or ids[0] < 0 or ids[-1] >= vocab or np.any(np.diff(ids) <= 0):
        raise ModelLoadError(f"output ids must be sorted, unique and inside the vocabulary [0, {vocab})")
    writer = gguf.GGUFWriter(str(out), arch)
    for name, field in reader.fields.items():
        if name.startswith(("GGUF.", "general.architecture", *_TOKENIZER_KEYS)) or name == f"{arch}.vocab_size":
            continue
        types = [gguf.GGUFValueType(t) for t in field.types]
        writer.add_key_value(name, field.contents(), types[0], sub_type=types[-1] if types[0] == gguf.GGUFValueType.ARRAY else None)
    writer.add_tokenizer_model("none")
    writer.add_uint32(f"{arch}.vocab_size", len(ids))
    for t in reader.tensors:
        data = t.data[ids] if t.name in _HEAD_TENSORS else t.data
        writer.add_tensor(t.name, np.ascontiguousarray(data), raw_dtype=t.tensor_type)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


class EmbeddingTable:
    """The full input embedding of a GGUF (``token_embd``), read row by row from the mapped file."""

    def __init__(self, path: str | Path) -> None:
        require_gguf()
        import gguf

        self._dequantize = gguf.quants.dequantize
        reader = gguf.GGUFReader(str(path))
        tensor = next((t for t in reader.tensors if t.name == "token_embd.weight"), None)
        if tensor is None:
            raise ModelLoadError(f"{path} has no token_embd.weight")
        self._data, self._type = tensor.data, tensor.tensor_type
        self.dim, self.vocab_size = int(tensor.shape[0]), int(tensor.shape[-1])

    def rows(self, ids: list[int] | np.ndarray) -> np.ndarray:
        """[len(ids), dim] float32."""
        raw = self._data[np.asarray(ids, dtype=np.int64)]
        return np.asarray(self._dequantize(raw, self._type), dtype=np.float32).reshape(len(ids), self.dim)
