"""Strict checkpoint checking, the one way every loader (LLM, BiCodec, …) compares a checkpoint
with the model its config describes: every problem is named at once, and nothing partial runs."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from fasttts.errors import ModelLoadError

Shape = Sequence[int]


def check_tensors(expected: Mapping[str, Shape], found: Mapping[str, Shape], *, where: str, ignore: Callable[[str], bool] = lambda name: False) -> None:
    """Raise :class:`ModelLoadError` naming every missing, unexpected (unless ``ignore``d) or wrongly
    shaped tensor of ``found`` (checkpoint name → shape) against ``expected`` (model name → shape)."""
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(n for n in set(found) - set(expected) if not ignore(n))
    wrong = sorted(f"{n} (checkpoint {list(found[n])}, model {list(expected[n])})" for n in set(expected) & set(found) if tuple(found[n]) != tuple(expected[n]))
    problems = [
        f"{label}: {', '.join(names)}" for label, names in (("missing tensors", missing), ("unexpected tensors", unexpected), ("wrong shapes", wrong)) if names
    ]
    if problems:
        raise ModelLoadError(f"{where} does not match its config; " + "; ".join(problems))
