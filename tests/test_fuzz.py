"""Hostile and malformed input against the HTTP API.

Property-based fuzzing from the app's own OpenAPI schema (schemathesis: valid and
invalid bodies, headers and parameters for every operation), plus the hand-picked nasty
cases. Every answer must be a 2xx or a 4xx with an ``error`` message; never a 5xx.
"""

from __future__ import annotations

import json

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.generation.modes import GenerationMode

from service.core.config import Settings
from service.main import create_app

SENT: dict[str, int] = {}
MIN_REQUESTS = 2000
OPERATIONS = ["POST /recommend", "POST /recommend/batch", "POST /events", "GET /healthz", "GET /readyz",
              "GET /metrics", "GET /model", "GET /model/concepts", "POST /admin/reload", "POST /admin/rollback"]
WITH_PARAMETERS = {"GET /model/concepts"}
EXAMPLES = 250  # per operation and mode; parameterless GETs generate far fewer


@pytest.fixture(scope="module")
def fuzz_operations(flat_bundle, redis_server_url):
    app = create_app(Settings(bundle=flat_bundle, redis_url=redis_server_url, admin_token="fuzz-token",
                              batching=False))
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = {}
    for result in schema.get_all_operations():
        operation = result.ok()
        operations[f"{operation.method.upper()} {operation.path}"] = operation
    return operations


def check(response) -> None:
    assert response.status_code < 500, (response.status_code, response.text[:500])
    if response.status_code >= 400:
        body = response.json()
        assert isinstance(body.get("error"), str) and body["error"], response.text[:500]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=lambda m: m.value)
@pytest.mark.parametrize("name", OPERATIONS)
def test_no_input_gets_a_5xx_and_every_4xx_says_why(fuzz_operations, name, mode):
    if mode is GenerationMode.NEGATIVE and name not in WITH_PARAMETERS and (
            name.startswith("GET") or name == "POST /admin/rollback"):
        pytest.skip("no parameters or body to make invalid (only an optional header)")
    operation = fuzz_operations[name]

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def fuzz(case):
        response = case.call()
        SENT[name] = SENT.get(name, 0) + 1
        check(response)

    fuzz()


def test_the_fuzzer_covered_every_operation_with_enough_requests():
    assert set(SENT) == set(OPERATIONS), SENT
    assert sum(SENT.values()) >= MIN_REQUESTS, SENT
    print(f"fuzzed {sum(SENT.values())} requests: {SENT}")


@pytest.fixture(scope="module")
def client(flat_bundle):
    from fastapi.testclient import TestClient

    with TestClient(create_app(Settings(bundle=flat_bundle, admin_token="t"))) as c:
        yield c


JSON = {"content-type": "application/json"}


@pytest.mark.parametrize("body", [
    b'{"clicks": ["1"], "top_n": 100000000000000000000000}',
    b'{"clicks": ["1"], "top_n": -1}',
    b'{"clicks": ["1"], "top_n": 1.5}',
    b'{"clicks": ["1"], "top_n": "50"}',
    json.dumps({"clicks": [str(i) for i in range(100_000)]}).encode()[:999_000] + b'"]}',
    b'{"clicks": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    b'{"a": ' * 10_000 + b"1" + b"}" * 10_000,
    b'{"clicks": ["\xc3\x28"]}',
    b"\xff\xfe\x00\x00",
    b'{"clicks": [null]}',
    b'{"clicks": [true, 1.5e308, -0]}',
    b'{"clicks": ["1"], "exclude": {"x": 1}}',
    b"",
    b"null",
    b'"just a string"',
    b"[1, 2, 3]",
    b'{"clicks": ["1"]',
], ids=lambda b: repr(b[:30]))
def test_nasty_bodies(client, body):
    for path in ("/recommend", "/recommend/batch", "/events", "/admin/reload"):
        headers = {**JSON, "authorization": "Bearer t"}
        check(client.post(path, content=body, headers=headers))


@pytest.mark.parametrize("item", [
    "1", "00042", "1e9", "NaN", "-0", "' OR 1=1; --", "Robert'); DROP TABLE items;--",
    "../../etc/passwd", "/etc/passwd", "C:\\Windows\\system32", "%00", "\u0000", "😀" * 10,
    "<script>alert(1)</script>", "${jndi:ldap://x}", " ", "\n",
])
def test_ids_that_look_like_numbers_sql_or_paths_are_just_ids(client, item):
    response = client.post("/recommend", json={"clicks": [item], "user_id": item, "exclude": [item]})
    check(response)
    assert response.status_code == 200
    assert response.json()["unknown_clicks"] == [item]  # not in the catalog: reported, never executed
    assert client.post("/events", json={"user_id": item, "item_id": item}).status_code == 200


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x", "application/xml", "", "json"])
def test_wrong_content_types(client, content_type):
    response = client.post("/recommend", content=b'{"clicks": ["1"]}', headers={"content-type": content_type})
    check(response)
    assert response.status_code == 415


def test_unknown_paths_and_methods(client):
    check(client.get("/nope"))
    check(client.put("/recommend"))
    check(client.delete("/events"))
    assert client.get("/recommend").status_code == 405
