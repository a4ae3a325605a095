"""The model registry: every family registered the same way, detection from files alone."""

from __future__ import annotations

import inspect
import pkgutil
import threading
from pathlib import Path

import pytest
import tomllib

import fasttts.models
from fasttts.config import Settings
from fasttts.engine.base import TTSEngine
from fasttts.errors import ModelLoadError
from fasttts.models.registry import FAMILY_MODULES, AutoEngine, detect_family, detect_model_type, families, family

ROOT = Path(__file__).resolve().parents[2]


def family_packages() -> list[str]:
    """Every package under fasttts/models that declares a family (has a family.py)."""
    return sorted(
        f"fasttts.models.{info.name}"
        for info in pkgutil.iter_modules(fasttts.models.__path__)
        if info.ispkg and (Path(fasttts.models.__path__[0]) / info.name / "family.py").is_file()
    )


def test_every_family_package_is_registered_once():
    assert sorted(m.removesuffix(".family") for m in FAMILY_MODULES) == family_packages()
    names = [f.name for f in families()]
    assert len(set(names)) == len(names)


@pytest.mark.parametrize("fam", families(), ids=lambda f: f.name)
def test_every_engine_is_built_by_the_one_from_settings_signature(fam):
    cls = fam.engine_class()
    assert issubclass(cls, TTSEngine) and cls.model_type == fam.name
    assert "from_settings" in cls.__dict__, f"{cls.__name__} must implement from_settings"
    base = inspect.signature(TTSEngine.from_settings)
    assert list(inspect.signature(cls.from_settings).parameters) == list(base.parameters)


def test_families_are_in_the_independence_contract():
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    independent = next(c for c in contracts if c["type"] == "independence" and "fasttts.models.spark" in c["modules"])
    assert sorted(independent["modules"]) == family_packages()


def test_detection_reads_the_files(tmp_path, tiny_spark_dir):
    assert detect_model_type(None) == "piper"
    assert detect_model_type(tiny_spark_dir) == "spark"
    voice = tmp_path / "voice.onnx"
    voice.write_bytes(b"")
    assert detect_model_type(voice) == "piper" and detect_model_type(tmp_path) == "piper"
    # a directory named like a family is still nothing without the family's files
    named = tmp_path / "Spark-TTS-0.5B"
    named.mkdir()
    with pytest.raises(ModelLoadError) as err:
        detect_family(named)
    for fam in families():
        assert f"{fam.name}: {fam.layout}" in err.value.message
    with pytest.raises(ModelLoadError, match="does not exist"):
        detect_family(tmp_path / "missing")
    with pytest.raises(ModelLoadError, match="unknown model family 'nope'"):
        family("nope")


def test_auto_engine_builds_the_default_and_rejects_unknown_settings():
    engine = AutoEngine(None, seed=3)
    assert engine.model_type == "piper" and engine.seed == 3
    assert AutoEngine(Settings(seed=4)).seed == 4
    with pytest.raises(TypeError, match="no_such_setting"):
        AutoEngine(None, no_such_setting=1)


def test_engines_load_on_a_thread_that_ends(monkeypatch):
    """Loading runs parallel torch ops; on the caller's thread (an event loop's, or asyncio.to_thread's,
    which lives on) they would leave an OpenMP team that throttles the LLM engine thread's."""
    cls = family("piper").engine_class()
    original = cls.from_settings.__func__
    loaded_on: list[threading.Thread] = []

    def recording(klass, *args, **kwargs):
        loaded_on.append(threading.current_thread())
        return original(klass, *args, **kwargs)

    monkeypatch.setattr(cls, "from_settings", classmethod(recording))
    assert AutoEngine(None).model_type == "piper"
    assert loaded_on and loaded_on[0] is not threading.current_thread() and not loaded_on[0].is_alive()


@pytest.mark.parametrize("name", ["spark", "orpheus"])
def test_llm_families_need_a_model_path(name):
    with pytest.raises(ModelLoadError, match="needs --model_path"):
        family(name).engine_class().from_settings(None, Settings())
