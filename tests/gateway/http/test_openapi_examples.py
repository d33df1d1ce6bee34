"""The /docs page's "Try it out" bodies are valid requests: each JSON route's example body, made
from /openapi.json the way Swagger UI makes it (a property's `example`, else a value of its
type), is sent over real HTTP to a gateway whose retailer has a live model, and none is
refused as INVALID_ARGUMENT. (NOT_FOUND for an example job id, or FAILED_PRECONDITION, are
answers about the data, not the request.)"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import requests

GOLDEN = Path(__file__).resolve().parents[2] / "forecasting" / "fixtures" / "artifact_v1"

#: What Swagger UI puts where the schema gives no example.
_BY_TYPE = {"string": "string", "integer": 0, "number": 0, "boolean": True}


def sample(schema: dict[str, Any], document: dict[str, Any], depth: int = 0) -> Any:
    """Swagger UI's example of `schema` (its sampler's rules, for the shapes this API uses)."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        return sample(document["components"]["schemas"][name], document, depth + 1)
    if "example" in schema:
        return schema["example"]
    if "oneOf" in schema:
        return sample(schema["oneOf"][0], document, depth)
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type", "object")
    if kind == "array":
        return [sample(schema.get("items", {}), document, depth + 1)]
    if kind == "object":
        if depth > 6:
            return {}
        if "additionalProperties" in schema:
            return {"additionalProp1": sample(schema["additionalProperties"], document, depth + 1)}
        return {k: sample(v, document, depth + 1) for k, v in schema.get("properties", {}).items()}
    return _BY_TYPE.get(kind, "string")


def test_every_example_body_is_a_valid_request(local_gateway) -> None:
    from forecast_gateway.dataplane import Tenant

    gw = local_gateway
    gw.server.service.models.import_model(Tenant("acme"), GOLDEN)   # trained on the sample
    base = f"http://127.0.0.1:{gw.server.http_port}"
    headers = {"Authorization": f"Bearer {gw.api_key('acme')}"}
    document = requests.get(base + "/openapi.json", timeout=30).json()
    refused = []
    for path, operations in document["paths"].items():
        for verb, operation in operations.items():
            content = operation.get("requestBody", {}).get("content", {})
            if "application/json" not in content or "/admin/" in path:
                continue
            media = content["application/json"]
            body = media["example"] if "example" in media else sample(media["schema"], document)
            url = base + path.replace("{retailer}", "acme").replace("{model_version}", "v1") \
                .replace("{job_id}", "job-0123456789ab").replace("{key_id}", "0123456789abcdef")
            answer = requests.request(verb, url, json=body, headers=headers, timeout=60)
            if answer.status_code == 400 or answer.status_code >= 500:
                refused.append(f"{verb.upper()} {path} {json.dumps(body)[:300]}: "
                               f"{answer.json()['message']}")
    assert refused == [], "\n".join(refused)
