"""The OpenAPI document is valid and every ``$ref`` in it resolves (issue #16: ``POST /v1/jobs``
pointed at ``#/$defs/VoiceIn``, which no document holds, so schema-driven clients and fuzzers could
not build a job)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from openapi_spec_validator import validate

from api.app import create_app
from fasttts.config import Settings


def refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from refs(value)


def resolve(spec: dict[str, Any], ref: str) -> Any:
    """A local JSON pointer (``#/a/b``) in ``spec``; KeyError when it points nowhere."""
    assert ref.startswith("#/"), ref
    node: Any = spec
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def test_the_whole_document_validates_and_every_ref_resolves(settings: Settings) -> None:
    spec = create_app(settings).openapi()
    validate(spec)
    found = set(refs(spec))
    unresolved = []
    for ref in sorted(found):
        try:
            resolve(spec, ref)
        except (KeyError, TypeError):
            unresolved.append(ref)
    assert not unresolved, unresolved
    assert "#/components/schemas/JobCreate" in found and "#/components/schemas/VoiceIn" in found


@pytest.mark.asyncio(loop_scope="session")
async def test_a_job_built_from_the_schema_is_accepted(fake_client) -> None:
    spec = (await fake_client.get("/openapi.json")).json()
    body = spec["paths"]["/v1/jobs"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    job_schema = resolve(spec, body["$ref"])
    voice_schema = resolve(spec, job_schema["properties"]["voice"]["$ref"])
    job = {
        "kind": job_schema["properties"]["kind"]["enum"][0],
        "text": "three words here",
        "voice": {"name": "female"} if "name" in voice_schema["properties"] else {},
    }
    r = await fake_client.post("/v1/jobs", json=job)
    assert r.status_code == 202, r.text
