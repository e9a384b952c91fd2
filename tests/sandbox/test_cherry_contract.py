"""Contract tests: every public response, success or error, matches openapi.yaml, and the app serves
exactly the operations the document describes (paths, methods, query parameters)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

from sandbox.cherry.contract import CONTRACT_URI, load_contract, registry, validator_for_schema
from sandbox.cherry.testing import CherrySandbox

CONTRACT = load_contract()


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def response_pointer(template: str, status: int) -> str:
    responses = CONTRACT["paths"][template]["get"]["responses"]
    code = str(status) if str(status) in responses else f"{status // 100}XX"
    assert code in responses, f"GET {template} answered {status}, which the contract does not document"
    ref = responses[code].get("$ref")
    return ref[1:] if ref else f"/paths/{_escape(template)}/get/responses/{code}"


def resolve(pointer: str) -> dict:
    node = CONTRACT
    for token in pointer.strip("/").split("/"):
        node = node[token.replace("~1", "/").replace("~0", "~")]
    return node


def check(response, template: str) -> None:
    """Assert that `response` is one the contract allows for GET `template`."""
    pointer = response_pointer(template, response.status_code)
    spec = resolve(pointer)
    media = response.headers["content-type"].split(";")[0]
    assert media in spec["content"], (template, response.status_code, media)
    if media == "application/json":
        schema = {"$ref": f"{CONTRACT_URI}#{pointer}/content/application~1json/schema"}
        problems = [
            f"{list(e.absolute_path)}: {e.message[:150]}"
            for e in validator_for_schema(schema).iter_errors(response.json())
        ]
        assert problems == [], (template, response.status_code, problems[:5])
    for header in spec.get("headers", {}):
        if header != "Retry-After":  # optional: only when the real limit was hit
            assert header in response.headers, (template, header)


@pytest.fixture(scope="module")
def sandbox() -> Iterator[CherrySandbox]:
    with CherrySandbox.start(
        practices=2, patients_per_practice=40, now="2026-01-15T00:00:00Z", rate_limits={"enabled": False}
    ) as running:
        running.advance(
            minutes=90,
            new_patients=3,
            refreshed=6,
            payments=3,
            refunds=2,
            cancellations=1,
            pings=1,
            duplicate_share=0.3,
            out_of_order_share=0.5,
        )
        yield running


def _pages(sandbox: CherrySandbox, path: str, index: int, limit: int, **params) -> Iterator:
    cursor = None
    while True:
        response = sandbox.get(path, index, limit=limit, **params, **({"cursor": cursor} if cursor else {}))
        yield response
        body = response.json()
        cursor = body.get("next_cursor")
        if not body.get("has_more"):
            if path == "/v1/events":  # the empty page at the end of the feed
                yield sandbox.get(path, index, cursor=cursor)
            return


def _successes(sandbox: CherrySandbox) -> Iterator[tuple[str, object]]:
    for index in range(2):
        yield "/v1/practice", sandbox.get("/v1/practice", index)
        patients = {}
        for params in ({}, {"status": "ACTIVE"}, {"status": "DECLINED"}, {"updated_since": "2025-06-01T00:00:00Z"}):
            for response in _pages(sandbox, "/v1/patients", index, 17, **params):
                yield "/v1/patients", response
                patients.update({p["id"]: p for p in response.json()["data"]})
        for pid in patients:
            yield "/v1/patients/{patient_id}", sandbox.get(f"/v1/patients/{pid}", index)
            yield "/v1/patients/{patient_id}/estimates", sandbox.get(f"/v1/patients/{pid}/estimates", index)
        for response in _pages(sandbox, "/v1/events", index, 60):
            yield "/v1/events", response
        for response in _pages(sandbox, "/v1/payments", index, 40):
            yield "/v1/payments", response
            for payment in response.json()["data"][:10]:
                yield "/v1/payments/{payment_id}", sandbox.get(f"/v1/payments/{payment['id']}", index)
        for amount in ("2500.00", "1", "50000"):
            yield "/v1/estimates", sandbox.get("/v1/estimates", index, amount=amount)
        for start, end in (("2025-01-01", "2025-12-31"), ("2010-01-01", "2010-01-01")):
            yield "/v1/reports/metrics", sandbox.get("/v1/reports/metrics", index, start=start, end=end)
    for response in _pages(sandbox, "/v1/marketing-assets", 0, 50):
        yield "/v1/marketing-assets", response
        for asset in response.json()["data"][::9]:
            yield "/v1/marketing-assets/{asset_id}", sandbox.get(f"/v1/marketing-assets/{asset['id']}", 1)
            yield (
                "/v1/marketing-assets/{asset_id}/content",
                sandbox.get(f"/v1/marketing-assets/{asset['id']}/content", 1),
            )


CLIENT_ERRORS = [
    ("/v1/patients", "/v1/patients", {"limit": 501}),
    ("/v1/patients", "/v1/patients", {"cursor": "bogus"}),
    ("/v1/patients", "/v1/patients", {"status": "NOPE"}),
    ("/v1/payments", "/v1/payments", {"updated_since": "nope"}),
    ("/v1/events", "/v1/events", {"cursor": "bogus"}),
    ("/v1/events", "/v1/events", {"limit": 0}),
    ("/v1/estimates", "/v1/estimates", {"amount": "0"}),
    ("/v1/estimates", "/v1/estimates", {}),
    ("/v1/marketing-assets", "/v1/marketing-assets", {"cursor": "bogus"}),
    ("/v1/reports/metrics", "/v1/reports/metrics", {"start": "2025-02-01", "end": "2025-01-01"}),
    ("/v1/reports/metrics", "/v1/reports/metrics", {"start": "2025-01-01"}),
    ("/v1/patients/pat_0", "/v1/patients/{patient_id}", {}),
    ("/v1/patients/pat_0/estimates", "/v1/patients/{patient_id}/estimates", {}),
    ("/v1/payments/pay_0", "/v1/payments/{payment_id}", {}),
    ("/v1/marketing-assets/ast_0", "/v1/marketing-assets/{asset_id}", {}),
    ("/v1/marketing-assets/ast_0/content", "/v1/marketing-assets/{asset_id}/content", {}),
]


def _errors(sandbox: CherrySandbox) -> Iterator[tuple[str, object]]:
    for path, template, params in CLIENT_ERRORS:
        yield template, sandbox.get(path, 0, **params)
    inactive_key = sandbox.create_key(0, activated=False)
    for template in CONTRACT["paths"]:
        path = template.replace("{patient_id}", "pat_0").replace("{payment_id}", "pay_0")
        path = path.replace("{asset_id}", "ast_0")
        yield template, sandbox.get(path, None)  # 401
        yield template, sandbox.get(path, api_key=inactive_key)  # 403
        for fault in ("429", "429_no_retry_after", "500", "502", "503"):
            sandbox.set_faults(script=[fault])
            yield template, sandbox.get(path, 0)
    sandbox.set_faults()


@pytest.fixture(scope="module")
def observed(sandbox: CherrySandbox) -> list[tuple[str, object]]:
    """Every kind of public response the sandbox gives, labelled with its path template."""
    return list(_successes(sandbox)) + list(_errors(sandbox))


def test_every_response_matches_the_contract(observed):
    failures = []
    for template, response in observed:
        try:
            check(response, template)
        except AssertionError as exc:
            failures.append(f"{template} {response.status_code}: {exc}")
    assert failures == [], failures[:10]
    assert len(observed) > 300


def test_every_documented_response_was_exercised(observed):
    seen = {(template, response.status_code) for template, response in observed}
    for template, item in CONTRACT["paths"].items():
        for code in item["get"]["responses"]:
            statuses = (500, 502, 503) if code == "5XX" else (int(code),)
            for status in statuses:
                assert (template, status) in seen, (template, status)


# -- the document and the app agree ----------------------------------------------------------------
def public_routes(app) -> set[tuple[str, str]]:
    return {
        (method, route.path)
        for route in app.routes
        if isinstance(route, APIRoute) and route.path.startswith("/v1")
        for method in route.methods
    }


def test_routes_and_document_match(sandbox: CherrySandbox):
    documented = {(method.upper(), path) for path, item in CONTRACT["paths"].items() for method in item}
    assert public_routes(sandbox.app) == documented
    assert all(path.startswith("/v1/") for _, path in documented)


def _parameters(operation: dict) -> set[tuple[str, str, bool]]:
    found = set()
    for param in operation.get("parameters", []):
        if "$ref" in param:
            param = resolve(param["$ref"][1:])
        found.add((param["in"], param["name"], bool(param.get("required", False))))
    return found


def test_query_and_path_parameters_match_the_code(sandbox: CherrySandbox):
    generated = get_openapi(title="x", version="0", routes=sandbox.app.routes)
    for path, item in CONTRACT["paths"].items():
        code_params = {
            (p["in"], p["name"], bool(p.get("required", False)))
            for p in generated["paths"][path]["get"].get("parameters", [])
        }
        assert _parameters(item["get"]) == code_params, path


def _refs(node) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def test_document_is_self_consistent():
    assert CONTRACT["openapi"].startswith("3.1")
    resolver = registry().resolver()
    refs = set(_refs(CONTRACT))
    assert refs
    for ref in refs:
        assert ref.startswith("#/components/")
        resolver.lookup(CONTRACT_URI + ref)  # raises if it does not resolve
    used = {ref.rsplit("/", 1)[1] for ref in refs if ref.startswith("#/components/schemas/")}
    assert set(CONTRACT["components"]["schemas"]) - used == set(), "unused schemas"
    ids = [op["operationId"] for item in CONTRACT["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids))


def test_served_openapi_is_the_document(sandbox: CherrySandbox):
    response = sandbox.http.get(sandbox.base_url + "/openapi.json", timeout=5)
    assert response.json() == CONTRACT
    assert sandbox.http.get(sandbox.base_url + "/docs", timeout=5).status_code == 200
