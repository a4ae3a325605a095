"""Command-line flags generated from :class:`~fasttts.config.Settings` and
:class:`~fasttts.params.SamplingParams`, for every command.

``fasttts serve`` (``api/main.py``), ``fasttts worker`` (``workers/main.py``) and ``fasttts infer``
(``fasttts/cli.py``) each name the settings they take; ``infer`` also takes one flag per sampling
field. The flag's name, default, choices (from the field's type) and help (its description) come
from the field, so no command copies a flag by hand.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import itertools
import textwrap
import types
import typing
from typing import Any, Literal

from pydantic.fields import FieldInfo

from fasttts.config import Settings
from fasttts.params import LIMITS, SamplingParams

GUIDE_DEFAULT_TEXT = {"role_dir": "data/roles (MegaTTS3: data/mega-roles)", "model_path": "the bundled Piper voice"}
SHORT_FLAGS = {"model_path": "-m", "backend": "-b"}

ENGINE_FLAGS = (
    "model_path", "backend", "snac_path", "lang", "llm_device", "tokenizer_device", "detokenizer_device",
    "wav2vec_attn_implementation", "llm_attn_implementation", "max_length", "llm_gpu_memory_utilization",
    "torch_dtype", "cache_implementation", "seed", "batch_size", "llm_batch_size", "wait_timeout", "fix_voice",
    "max_reference_seconds",
)  # fmt: skip
"""The model/engine settings: ``infer`` takes these; ``serve`` and ``worker`` take them and more."""

WORKER_FLAGS = (
    *ENGINE_FLAGS, "allow_private_urls", "data_dir", "database_url", "broker_url", "s3_bucket", "s3_prefix", "s3_endpoint_url",
    "s3_region", "auto_migrate", "job_queue", "job_batch_size", "job_max_attempts", "segment_lease_s", "job_task_time_limit_s",
    "job_result_ttl_s", "webhook_deadline_s", "worker_concurrency",
)  # fmt: skip
"""``fasttts worker``: the engine, where jobs live (database, broker, S3) and how they run. Secrets
(S3 keys, webhook secret) come from the environment or ``.env`` only, never from a command line."""


def _voice_map(text: str) -> dict[str, str]:
    """``alloy=female,echo=male`` → {"alloy": "female", "echo": "male"}."""
    pairs = [p.split("=", 1) for p in text.split(",") if p.strip()]
    if any(len(p) != 2 for p in pairs):
        raise argparse.ArgumentTypeError("expected OPENAI=OURS[,OPENAI=OURS...]")
    return {k.strip(): v.strip() for k, v in pairs}


SAMPLING_FLAG_NAMES = {"seed": "request_seed"}
"""The :class:`SamplingParams` fields whose flag is not their name (``--seed`` is the engine's,
:attr:`Settings.seed`); every other sampling field's flag is ``--<field>``."""


def _add_flag(parser: argparse.ArgumentParser, name: str, field: FieldInfo, *, default_text: str | None = None) -> None:
    annotation = field.annotation
    union = isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union
    base = next(a for a in typing.get_args(annotation) if a is not type(None)) if union else annotation
    default = default_text or GUIDE_DEFAULT_TEXT.get(name, field.get_default(call_default_factory=True))
    kwargs: dict[str, Any] = {"default": argparse.SUPPRESS, "help": f"{field.description or ''} (default: {default})".strip()}
    flags = [SHORT_FLAGS[name], f"--{name}"] if name in SHORT_FLAGS else [f"--{name}"]
    if base is bool:
        parser.add_argument(*flags, action=argparse.BooleanOptionalAction, **kwargs)
        return
    if typing.get_origin(base) is Literal:
        kwargs["choices"] = list(typing.get_args(base))
    elif typing.get_origin(base) is list:
        kwargs.update(nargs="+", metavar="ORIGIN")
    elif typing.get_origin(base) is dict:
        kwargs["type"] = _voice_map
    elif base in (int, float):
        kwargs["type"] = base
    parser.add_argument(*flags, **kwargs)


def add_settings_flags(parser: argparse.ArgumentParser, names: tuple[str, ...]) -> None:
    """One flag per named :class:`Settings` field: same name, default, choices (from the field's
    type) and help (its description), so no command hand-copies a flag. A flag not given leaves
    the value to the environment (``FASTTTS_*``), ``.env``, then the default."""
    for name in names:
        _add_flag(parser, name, Settings.model_fields[name])


def settings_from_args(args: argparse.Namespace) -> Settings:
    """The settings the given flags ask for (the rest from the environment, ``.env``, defaults)."""
    return Settings(**{k: v for k, v in vars(args).items() if k in Settings.model_fields})


def attribute_docs(cls: type) -> dict[str, str]:
    """The attribute docstrings of a class (the string right after each annotated field), joined
    into one line each; empty when its source cannot be read."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError):
        return {}
    body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
    docs: dict[str, str] = {}
    for stmt, after in itertools.pairwise(body):
        if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and isinstance(after, ast.Expr):
            if isinstance(after.value, ast.Constant) and isinstance(after.value.value, str):
                docs[stmt.target.id] = " ".join(after.value.value.split())
    return docs


def dataclass_fields(cls: type) -> dict[str, FieldInfo]:
    """A dataclass's fields as pydantic :class:`FieldInfo` (type, default, attribute docstring as
    description), so its flags are made as :class:`Settings`' are."""
    hints, docs = typing.get_type_hints(cls), attribute_docs(cls)
    infos: dict[str, FieldInfo] = {}
    for f in dataclasses.fields(cls):
        default: dict[str, Any] = {"default_factory": f.default_factory} if f.default is dataclasses.MISSING else {"default": f.default}
        infos[f.name] = FieldInfo(annotation=hints[f.name], description=docs.get(f.name), **default)
    return infos


def add_sampling_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per :class:`SamplingParams` field (``--<field>``, or its name in
    :data:`SAMPLING_FLAG_NAMES`), with the field's type, docstring and allowed range as help. A flag
    not given leaves the field to :class:`SamplingParams`' default (``None``: the model's)."""
    for name, field in dataclass_fields(SamplingParams).items():
        if name in LIMITS:
            field.description = f"{field.description or ''} Allowed: {LIMITS[name]}.".strip()
        _add_flag(parser, SAMPLING_FLAG_NAMES.get(name, name), field, default_text="the model's" if field.default is None else None)


def sampling_from_args(args: argparse.Namespace) -> SamplingParams:
    """The :class:`SamplingParams` the flags of :func:`add_sampling_flags` ask for; raises
    :class:`~fasttts.errors.InvalidRequestError` naming a value out of range."""
    given = vars(args)
    names = (f.name for f in dataclasses.fields(SamplingParams))
    return SamplingParams(**{name: given[flag] for name in names if (flag := SAMPLING_FLAG_NAMES.get(name, name)) in given})
