"""``fasttts infer``'s sampling flags, generated from :class:`SamplingParams`."""

from __future__ import annotations

import dataclasses

import pytest

from fasttts.cli import infer_parser
from fasttts.flags import SAMPLING_FLAG_NAMES, sampling_from_args
from fasttts.params import LIMITS, SamplingParams

REQUIRED = ["-i", "Hello.", "-o", "out.wav"]
FIELDS = [f.name for f in dataclasses.fields(SamplingParams)]


def option_actions() -> dict[str, object]:
    return {flag: action for action in infer_parser()._actions for flag in action.option_strings}


def test_every_sampling_field_has_its_flag() -> None:
    actions = option_actions()
    expected = {"temperature", "top_k", "top_p", "repetition_penalty", "max_tokens", "request_seed", "text_weight", "speaker_weight", "diffusion_steps"}
    flags = {SAMPLING_FLAG_NAMES.get(name, name) for name in FIELDS}
    assert flags == expected  # the flag names of the hand-written flags they replace
    for name in FIELDS:
        action = actions[f"--{SAMPLING_FLAG_NAMES.get(name, name)}"]
        assert str(LIMITS[name]) in action.help, name  # type: ignore[attr-defined]
    assert "--seed" in actions  # the engine's seed (Settings.seed) keeps its own flag


def test_no_sampling_flag_keeps_the_defaults() -> None:
    assert sampling_from_args(infer_parser().parse_args(REQUIRED)) == SamplingParams()


def test_parsed_flags_build_the_same_sampling_params() -> None:
    values = dict(temperature=0.5, top_k=7, top_p=0.25, repetition_penalty=1.5, max_tokens=321, seed=42, text_weight=2.0, speaker_weight=3.0, diffusion_steps=9)
    assert set(values) == set(FIELDS)
    argv = [a for name, v in values.items() for a in (f"--{SAMPLING_FLAG_NAMES.get(name, name)}", str(v))]
    args = infer_parser().parse_args(REQUIRED + argv)
    assert sampling_from_args(args) == SamplingParams(**values)
    assert not hasattr(args, "seed")  # --request_seed is not the engine's --seed (Settings.seed)
    one = sampling_from_args(infer_parser().parse_args([*REQUIRED, "--top_p", "0.9"]))
    assert one == SamplingParams(top_p=0.9)


def test_a_value_out_of_range_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    from fasttts.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["infer", *REQUIRED, "--temperature", "99"])
    assert exc.value.code == 2
    assert "temperature: must be between 0 and 10" in capsys.readouterr().err
