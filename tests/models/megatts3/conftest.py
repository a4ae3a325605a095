"""A tiny random MegaTTS3 release and a reference voice (wav + npy), written once per session."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_mega_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from fasttts.models.megatts3.random_model import write_random_mega

    return write_random_mega(tmp_path_factory.mktemp("mega-tiny"), size="tiny", seed=0)


@pytest.fixture(scope="session")
def mega_voice(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from fasttts.models.megatts3.random_model import write_random_voice

    return write_random_voice(tmp_path_factory.mktemp("mega-voice"), seconds=1.2, seed=1)
