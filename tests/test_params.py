"""The request parameters: each enum and range defined once (fasttts/params.py) and enforced the same
way by the parameter objects, the HTTP schemas, the CLI and the backend registry."""

from __future__ import annotations

import pytest

from api.openai.protocol import OpenAISpeechRequest
from api.schemas import SpeakRequest
from fasttts.audio.encode import CONTENT_TYPES
from fasttts.backends.registry import BACKENDS
from fasttts.config import Settings
from fasttts.errors import InvalidRequestError
from fasttts.params import BACKEND_NAMES, LEVELS, LIMITS, RESPONSE_FORMATS, Limit, SamplingParams, SplitParams

SAMPLING = ("temperature", "top_k", "top_p", "repetition_penalty", "max_tokens", "seed")


def test_every_format_encodes_and_every_backend_name_is_registered():
    assert tuple(CONTENT_TYPES) == RESPONSE_FORMATS
    assert tuple(BACKENDS) == BACKEND_NAMES
    assert Settings.model_json_schema()["properties"]["backend"]["enum"] == list(BACKEND_NAMES)


@pytest.mark.parametrize("schema", [SpeakRequest, OpenAISpeechRequest])
def test_http_schemas_take_enums_and_ranges_from_params(schema):
    props = schema.model_json_schema()["properties"]
    assert props["response_format"]["enum"] == list(RESPONSE_FORMATS)
    assert props["pitch"]["anyOf"][0]["enum"] == list(LEVELS)
    for name in (*SAMPLING, "length_threshold", "window_size"):
        bounds = next(part for part in props[name].get("anyOf", [props[name]]) if part.get("type") in ("number", "integer"))
        limit = LIMITS[name]
        assert bounds.get("exclusiveMinimum" if limit.low_open else "minimum") == limit.low, name
        assert bounds.get("maximum") == limit.high, name


@pytest.mark.parametrize("name", SAMPLING)
def test_sampling_params_refuse_values_outside_their_limit_naming_the_field(name):
    limit = LIMITS[name]
    below = limit.low if limit.low_open else limit.low - 1
    with pytest.raises(InvalidRequestError) as err:
        SamplingParams(**{name: below})
    assert err.value.param == name and str(limit) in err.value.message
    SamplingParams(**{name: limit.high if limit.high is not None else limit.low + 1})


def test_split_params_and_limit_wording():
    with pytest.raises(InvalidRequestError) as err:
        SplitParams(window_size=100_001)
    assert err.value.param == "window_size" and "between 1 and 100000" in err.value.message
    assert str(Limit(0.0, 1.0, low_open=True)) == "in (0, 1]" and str(Limit(0)) == ">= 0"
