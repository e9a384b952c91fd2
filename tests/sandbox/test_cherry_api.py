"""Public API basics against a real Cherry sandbox server: auth, errors, pagination, filters."""

from __future__ import annotations

import base64

import pytest

from sandbox.cherry.testing import CherrySandbox


def error_code(response) -> str:
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
    return body["error"]["code"]


# -- auth ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer ck_sandbox_nope"}, {"Authorization": "Basic x"}, {"Authorization": "Bearer "}],
)
def test_missing_or_unknown_key_is_401(cherry_sandbox: CherrySandbox, headers):
    response = cherry_sandbox.http.get(cherry_sandbox.base_url + "/v1/patients", headers=headers, timeout=5)
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/json"
    assert error_code(response) == "unauthorized"


def test_key_not_activated_is_403_until_activated(cherry_sandbox: CherrySandbox):
    key = cherry_sandbox.create_key(1, activated=False)
    response = cherry_sandbox.get("/v1/practice", api_key=key)
    assert response.status_code == 403
    assert error_code(response) == "key_not_activated"

    cherry_sandbox.set_key(key, activated=True)
    response = cherry_sandbox.get("/v1/practice", api_key=key)
    assert response.status_code == 200
    assert response.json()["id"] == cherry_sandbox.practices[1].id

    cherry_sandbox.set_key(key, revoked=True)
    assert cherry_sandbox.get("/v1/practice", api_key=key).status_code == 401


def test_each_key_sees_only_its_practice(cherry_sandbox: CherrySandbox):
    first, second = cherry_sandbox.practices[:2]
    other_patient = cherry_sandbox.get("/v1/patients", second, limit=1).json()["data"][0]["id"]
    response = cherry_sandbox.get(f"/v1/patients/{other_patient}", first)
    assert response.status_code == 404
    assert error_code(response) == "not_found"
    ids_first = {row["id"] for row in cherry_sandbox.fetch_all("/v1/patients", first)}
    assert other_patient not in ids_first


def test_practice_endpoint(cherry_sandbox: CherrySandbox):
    for info in cherry_sandbox.practices:
        body = cherry_sandbox.get("/v1/practice", info).json()
        assert body["id"] == info.id and body["timezone"] == info.timezone
        assert 1 <= len(body["locations"]) <= 3
        assert all(loc["id"].startswith("loc_") and loc["name"] for loc in body["locations"])


# -- pagination ------------------------------------------------------------------------------------
def page_through(sandbox: CherrySandbox, path: str, limit: int, **params) -> tuple[list[dict], int]:
    rows, cursor, pages = [], None, 0
    while True:
        query = dict(params, limit=limit, **({"cursor": cursor} if cursor else {}))
        body = sandbox.get(path, 0, **query).json()
        pages += 1
        assert len(body["data"]) <= limit
        rows.extend(body["data"])
        if not body["has_more"]:
            assert body["next_cursor"] is None
            return rows, pages
        assert body["next_cursor"]
        cursor = body["next_cursor"]


@pytest.mark.parametrize("path", ["/v1/patients", "/v1/payments", "/v1/marketing-assets"])
def test_paging_to_the_end_neither_overlaps_nor_skips(cherry_sandbox_factory, path):
    sandbox = cherry_sandbox_factory(rate_limits={"enabled": False})
    everything = sandbox.fetch_all(path, 0, limit=500)
    rows, pages = page_through(sandbox, path, limit=7)
    ids = [row["id"] for row in rows]
    assert len(ids) == len(set(ids)) == len(everything)  # total rows == distinct ids: no overlap...
    assert ids == [row["id"] for row in everything]  # ...and no skip, same order as one big page
    assert pages == -(-len(everything) // 7)
    if path == "/v1/patients":
        dump = sandbox.admin("GET", f"/practices/{sandbox.practices[0].id}/patients")
        assert len(ids) == len(dump) == 40


def test_paging_is_stable_while_data_changes(cherry_sandbox_factory):
    sandbox = cherry_sandbox_factory(rate_limits={"enabled": False})
    before = {row["id"] for row in sandbox.fetch_all("/v1/patients")}
    seen: list[str] = []
    body = sandbox.get("/v1/patients", 0, limit=10).json()
    seen += [row["id"] for row in body["data"]]
    # Change the data mid-listing: some already-read patients change, new ones arrive.
    sandbox.advance(minutes=30, new_patients=5, refreshed=15, payments=5, practice_id=sandbox.practices[0].id)
    while body["has_more"]:
        body = sandbox.get("/v1/patients", 0, limit=10, cursor=body["next_cursor"]).json()
        seen += [row["id"] for row in body["data"]]
    assert before <= set(seen)  # nobody skipped
    assert len(set(seen)) == len(before) + 5  # the newcomers are listed too
    # A record read twice was changed in between (seen again, newer), never duplicated otherwise.
    assert len(seen) - len(set(seen)) <= 15 + 5


def test_limit_bounds_and_default(cherry_sandbox: CherrySandbox):
    assert len(cherry_sandbox.get("/v1/patients", 0).json()["data"]) == 40  # default 100 > 40
    for bad in (0, 501, -1, "ten"):
        response = cherry_sandbox.get("/v1/patients", 0, limit=bad)
        assert response.status_code == 400, bad
        assert error_code(response) == "invalid_request"
    assert len(cherry_sandbox.get("/v1/events", 0, limit=150).json()["data"]) == 150
    assert len(cherry_sandbox.get("/v1/events", 0, limit=500).json()["data"]) <= 500


def _tamper(cursor: str) -> list[str]:
    raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    kind, practice, position, mac = raw.split(".")
    encode = lambda text: base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")  # noqa: E731
    return [
        encode(f"{kind}.{practice}.{int(position) + 1}.{mac}"),  # moved position, old signature
        encode(f"{kind}.{practice}.{position}"),  # signature cut off
        cursor[:-3],
        "not-a-cursor!",
        cursor + "AAAA",
    ]


@pytest.mark.parametrize("path", ["/v1/patients", "/v1/payments", "/v1/events", "/v1/marketing-assets"])
def test_tampered_cursor_is_400(cherry_sandbox: CherrySandbox, path):
    cursor = cherry_sandbox.get(path, 0, limit=2).json()["next_cursor"]
    for bad in _tamper(cursor):
        response = cherry_sandbox.get(path, 0, limit=2, cursor=bad)
        assert response.status_code == 400, bad
        assert error_code(response) == "invalid_request"


def test_cursor_of_another_listing_or_practice_is_400(cherry_sandbox: CherrySandbox):
    cursor = cherry_sandbox.get("/v1/patients", 0, limit=2).json()["next_cursor"]
    assert cherry_sandbox.get("/v1/payments", 0, cursor=cursor).status_code == 400
    assert cherry_sandbox.get("/v1/patients", 1, cursor=cursor).status_code == 400


# -- filters ---------------------------------------------------------------------------------------
def test_status_filter(cherry_sandbox: CherrySandbox):
    everything = cherry_sandbox.fetch_all("/v1/patients")
    for status in ("ACTIVE", "INACTIVE", "EXPIRED", "DECLINED", "PENDING_REVIEW"):
        rows = cherry_sandbox.fetch_all("/v1/patients", limit=3, status=status)
        assert all(row["account_status"] == status for row in rows)
        assert [r["id"] for r in rows] == [r["id"] for r in everything if r["account_status"] == status]
    assert cherry_sandbox.get("/v1/patients", 0, status="active").status_code == 400


@pytest.mark.parametrize("path", ["/v1/patients", "/v1/payments"])
def test_updated_since_filter(cherry_sandbox: CherrySandbox, path):
    everything = cherry_sandbox.fetch_all(path)
    pivot = sorted(row["updated_at"] for row in everything)[len(everything) // 2]
    rows = cherry_sandbox.fetch_all(path, limit=5, updated_since=pivot)
    expected = [row["id"] for row in everything if row["updated_at"] >= pivot]
    assert [row["id"] for row in rows] == expected and expected
    # Offsets are honoured: the same instant written in another zone selects the same rows.
    same_instant = pivot.replace("Z", "+00:00")
    assert [r["id"] for r in cherry_sandbox.fetch_all(path, updated_since=same_instant)] == expected
    for bad in ("yesterday", "2025-01-01", "2025-13-01T00:00:00Z", "2025-01-01T00:00:00"):
        response = cherry_sandbox.get(path, 0, updated_since=bad)
        assert response.status_code == 400, bad
        assert error_code(response) == "invalid_request"


def test_list_ordering_follows_updated_at(cherry_sandbox: CherrySandbox):
    rows = cherry_sandbox.fetch_all("/v1/patients")
    stamps = [row["updated_at"] for row in rows]
    assert stamps == sorted(stamps)


def test_single_objects_and_404(cherry_sandbox: CherrySandbox):
    patient = cherry_sandbox.get("/v1/patients", 0, limit=1).json()["data"][0]
    assert cherry_sandbox.get(f"/v1/patients/{patient['id']}", 0).json() == patient
    payment = cherry_sandbox.get("/v1/payments", 0, limit=1).json()["data"][0]
    assert cherry_sandbox.get(f"/v1/payments/{payment['id']}", 0).json() == payment
    for path in (
        "/v1/patients/pat_0000",
        "/v1/payments/pay_0000",
        "/v1/marketing-assets/ast_0",
        "/v1/marketing-assets/ast_0/content",
        "/v1/patients/pat_0000/estimates",
        "/v1/nowhere",
    ):
        response = cherry_sandbox.get(path, 0)
        assert response.status_code == 404, path
        assert error_code(response) == "not_found"


def test_errors_never_echo_request_values(cherry_sandbox: CherrySandbox):
    secret = "Jane.Doe@example.com"
    for response in (
        cherry_sandbox.get("/v1/patients", 0, updated_since=secret),
        cherry_sandbox.get("/v1/estimates", 0, amount=secret),
        cherry_sandbox.get(f"/v1/patients/{secret}", 0),
        cherry_sandbox.get("/v1/patients", 0, status=secret),
    ):
        assert response.status_code in (400, 404)
        assert "Jane" not in response.text and "example.com" not in response.text


def test_method_not_allowed_uses_the_error_shape(cherry_sandbox: CherrySandbox):
    info = cherry_sandbox.practices[0]
    response = cherry_sandbox.http.post(cherry_sandbox.base_url + "/v1/patients", headers=info.headers, timeout=5)
    assert response.status_code == 405
    assert error_code(response) == "method_not_allowed"


def test_reset_returns_to_the_seeded_state(cherry_sandbox: CherrySandbox):
    before = cherry_sandbox.fetch_all("/v1/patients")
    clock = cherry_sandbox.now()
    cherry_sandbox.advance(minutes=600, new_patients=3, refreshed=5)
    assert cherry_sandbox.fetch_all("/v1/patients") != before and cherry_sandbox.now() > clock
    cherry_sandbox.admin("POST", "/reset")
    assert cherry_sandbox.fetch_all("/v1/patients") == before and cherry_sandbox.now() == clock
    # The demo keys survive a reset (they come from the seed).
    assert cherry_sandbox.get("/v1/practice", 2).status_code == 200


def test_admin_lists_practices_without_patient_data(cherry_sandbox: CherrySandbox):
    rows = cherry_sandbox.admin("GET", "/practices")
    assert [r["id"] for r in rows] == [p.id for p in cherry_sandbox.practices]
    for row in rows:
        assert row["patients"] == 40 and row["events"] > row["patients"]
        assert all(k["api_key"].startswith("ck_sandbox_") for k in row["api_keys"])
    assert "@" not in str(rows)
