"""Write the GGUF of a Hugging Face LLM directory (for the ``llama-cpp`` backend).

We do not write GGUF ourselves: llama.cpp's own converter (``convert_hf_to_gguf.py`` plus its
``conversion/`` package) ships inside the ``llama-cpp-python`` *source* distribution, which
vendors llama.cpp. :func:`find_converter` takes it from an extracted tree or from the sdist
tarball (``pip download --no-deps --no-binary :all: llama-cpp-python``, see
:func:`fetch_converter`, an install-time step; nothing is downloaded while converting). The
converter runs in a subprocess so its logging set-up and imports stay out of ours. It imports
``gguf`` from the vendored ``gguf-py`` beside it when the tree has one (the PyPI ``gguf`` release
can lag the converter: 0.19.0 lacks architectures that llama.cpp 0.3.36's converter registers),
else the PyPI package.

F16 and Q8_0 come straight from the converter; Q4_K_M is F16 re-quantised by llama.cpp's
quantiser (``llama_cpp.llama_model_quantize``).

One adaptation: the converter recognises a BPE pre-tokenizer by hashing how a tokenizer encodes a
fixed text, so a random test tokenizer (same regex as Qwen2 / Llama-3, different merges) is not
recognised. Only then do we name the pre-tokenizer from ``tokenizer.json``'s split regex; the
real releases keep the converter's own answer.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import cast

from fasttts.backends.llama_cpp_backend import gguf_file_type
from fasttts.errors import MissingExtraError, ModelLoadError

__all__ = ["QUANTS", "fetch_converter", "find_converter", "gguf_file_type", "quantize_gguf", "write_gguf"]

QUANTS = ("F32", "F16", "Q8_0", "Q4_K_M")
_OUTTYPE = {"F32": "f32", "F16": "f16", "Q8_0": "q8_0"}
_SCRIPT = "convert_hf_to_gguf.py"
_ENV = "FASTTTS_LLAMA_CPP_SOURCE"

# Split regexes of the tokenizer families we write (see fasttts.models.random_llm) -> llama.cpp's name.
_PRE_TOKENIZERS = {
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+""": "qwen2",
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+""": "llama-bpe",
}


# ----------------------------------------------------------------------------- the converter
def _cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "fasttts"


def _extract(sdist: Path) -> Path:
    """Unpack the converter (script, ``conversion/``, ``gguf-py/``) from a llama-cpp-python sdist, once."""
    dest = _cache_dir() / sdist.name.removesuffix(".tar.gz")
    if (dest / _SCRIPT).is_file():
        return dest
    with tarfile.open(sdist) as tar:
        members = []
        for m in tar.getmembers():
            _, _, rel = m.name.partition("/vendor/llama.cpp/")
            if m.isfile() and (rel == _SCRIPT or rel.startswith(("conversion/", "gguf-py/gguf/"))):
                m.name = rel
                members.append(m)
        if not any(m.name == _SCRIPT for m in members):
            raise ModelLoadError(f"{sdist} holds no vendor/llama.cpp/{_SCRIPT}; is it a llama-cpp-python sdist?")
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=dest.parent))
        tar.extractall(tmp, members=members, filter="data")
    if dest.exists():  # another process won the race with the same files
        shutil.rmtree(tmp)
    else:
        tmp.rename(dest)
    return dest


def find_converter(source: str | Path | None = None) -> Path:
    """The directory holding ``convert_hf_to_gguf.py`` and ``conversion/``.

    Looked for in ``source`` (a llama.cpp tree, the script itself or a llama-cpp-python sdist
    ``.tar.gz``), else ``$FASTTTS_LLAMA_CPP_SOURCE``, else beside the installed ``llama_cpp``
    package, else the newest sdist or extracted tree in ``~/.cache/fasttts``.
    """
    candidates: list[Path] = []
    if source or os.environ.get(_ENV):
        candidates.append(Path(source or os.environ[_ENV]))
    else:
        try:
            import llama_cpp

            pkg = Path(llama_cpp.__file__).parent
            candidates += [pkg / "vendor" / "llama.cpp", pkg.parent / "vendor" / "llama.cpp"]
        except ImportError:
            pass
        cache = _cache_dir()
        if cache.is_dir():
            candidates += sorted(cache.glob("llama_cpp_python-*.tar.gz"), reverse=True)
    for path in candidates:
        if path.name.endswith(".tar.gz") and path.is_file():
            return _extract(path)
        if path.is_file() and path.name == _SCRIPT:
            return path.parent
        if (path / _SCRIPT).is_file():
            return path
    raise ModelLoadError(
        f"llama.cpp's {_SCRIPT} was not found (looked in: {', '.join(map(str, candidates)) or 'nothing'}); "
        f"get it with `python -m fasttts.models.gguf --fetch-converter` or set {_ENV} to a llama-cpp-python sdist"
    )


def fetch_converter() -> Path:
    """Install-time step: ``pip download`` the sdist of the installed llama-cpp-python into the cache."""
    try:
        from importlib.metadata import version

        spec = f"llama-cpp-python=={version('llama-cpp-python')}"
    except Exception:
        spec = "llama-cpp-python"
    cache = _cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", spec, "-d", str(cache)], check=True)
    return find_converter(max(cache.glob("llama_cpp_python-*.tar.gz"), key=lambda p: p.stat().st_mtime))


def _converter_main() -> None:
    """Subprocess entry: ``argv = [converter_dir, model_dir, outfile, outtype]``."""
    converter_dir, model_dir, outfile, outtype = sys.argv[1:5]
    sys.path.insert(0, converter_dir)  # the script puts its own gguf-py first when present
    from conversion.base import TextModel

    recognise = TextModel.get_vocab_base_pre

    def get_vocab_base_pre(self: object, tokenizer: object) -> str:
        try:
            return cast(str, recognise(self, tokenizer))  # the converter script is untyped
        except NotImplementedError:
            name = _pre_tokenizer_from_json(Path(model_dir) / "tokenizer.json")
            if name is None:
                raise
            return name

    TextModel.get_vocab_base_pre = get_vocab_base_pre
    import convert_hf_to_gguf

    sys.argv = [_SCRIPT, model_dir, "--outfile", outfile, "--outtype", outtype]
    convert_hf_to_gguf.main()


def _pre_tokenizer_from_json(path: Path) -> str | None:
    spec = json.loads(path.read_text()).get("pre_tokenizer") or {}
    for part in spec.get("pretokenizers", [spec]):
        if part.get("type") == "Split":
            return _PRE_TOKENIZERS.get(part.get("pattern", {}).get("Regex"))
    return None


# ----------------------------------------------------------------------------- writing
def _convert(model_dir: Path, out: Path, outtype: str, converter: Path) -> None:
    root = str(Path(__file__).resolve().parents[2])  # so the subprocess imports this fasttts
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    cmd = [sys.executable, "-c", "from fasttts.models.gguf import _converter_main; _converter_main()", str(converter), str(model_dir), str(out), outtype]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0 or not out.is_file():
        raise ModelLoadError(f"GGUF conversion of {model_dir} failed:\n{proc.stderr[-4000:]}")


def quantize_gguf(src: str | Path, quant: str, out: str | Path | None = None) -> Path:
    """Re-quantise a GGUF file with llama.cpp's quantiser (``llama_cpp.llama_model_quantize``).

    The default output is ``model-<quant>.gguf`` beside ``src``.
    """
    try:
        import llama_cpp
    except ImportError:
        raise MissingExtraError("llama-cpp-python", "llama-cpp") from None
    quant = quant.upper()
    ftype = getattr(llama_cpp, f"LLAMA_FTYPE_{'ALL' if quant == 'F32' else 'MOSTLY'}_{quant}", None)
    if quant not in QUANTS or ftype is None:
        raise ValueError(f"quant must be one of {', '.join(QUANTS)}, not {quant!r}")
    src = Path(src)
    out = Path(out) if out is not None else src.with_name(f"model-{quant}.gguf")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftype
    params.nthread = len(os.sched_getaffinity(0))
    rc = llama_cpp.llama_model_quantize(str(src).encode(), str(out).encode(), ctypes.byref(params))
    if rc != 0 or not out.is_file():
        raise ModelLoadError(f"llama.cpp could not quantise {src} to {quant} (code {rc})")
    return out


def write_gguf(model_dir: str | Path, quant: str = "Q4_K_M", out: str | Path | None = None, *, converter: str | Path | None = None) -> Path:
    """Write ``model_dir``'s weights as GGUF (``quant`` in :data:`QUANTS`) and return the file.

    The default file is ``<model_dir>/model-<quant>.gguf``, where the llama-cpp backend finds it.
    """
    quant = quant.upper()
    if quant not in QUANTS:
        raise ValueError(f"quant must be one of {', '.join(QUANTS)}, not {quant!r}")
    try:
        import gguf  # noqa: F401  (the converter needs it)
    except ImportError:
        raise MissingExtraError("gguf", "llama-cpp") from None
    model_dir = Path(model_dir)
    if not (model_dir / "config.json").is_file():
        raise ModelLoadError(f"{model_dir} is not a Hugging Face LLM directory (no config.json)")
    out = Path(out) if out is not None else model_dir / f"model-{quant}.gguf"
    source = find_converter(converter)
    if quant in _OUTTYPE:
        _convert(model_dir, out, _OUTTYPE[quant], source)
        return out
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        f16 = Path(tmp) / "model-F16.gguf"
        _convert(model_dir, f16, "f16", source)
        quantize_gguf(f16, quant, out)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m fasttts.models.gguf", description=__doc__.splitlines()[0])
    parser.add_argument("model_dir", nargs="?", help="Hugging Face LLM directory (e.g. Spark-TTS-0.5B/LLM)")
    parser.add_argument("--quant", default="Q4_K_M", choices=QUANTS)
    parser.add_argument("--out", help="output file (default: MODEL_DIR/model-QUANT.gguf)")
    parser.add_argument("--converter", help="llama.cpp tree or llama-cpp-python sdist holding convert_hf_to_gguf.py")
    parser.add_argument("--fetch-converter", action="store_true", help="pip download the llama-cpp-python sdist into the cache first")
    args = parser.parse_args(argv)
    if args.fetch_converter:
        print(fetch_converter())
    if args.model_dir:
        print(write_gguf(args.model_dir, args.quant, args.out, converter=args.converter))


if __name__ == "__main__":
    main()
