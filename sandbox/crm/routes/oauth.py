"""HighLevel's OAuth endpoints: POST /oauth/token, POST /oauth/locationToken, GET /oauth/installedLocations.

Bodies are form-encoded as in the real API; anything else reads as an empty form (422 for the missing
fields, as the real API answers a JSON body). Token-endpoint errors use RFC 6749 bodies
(`{"error", "error_description"}`); the two agency endpoints use HighLevel's usual `{statusCode, message, error}`.
"""

from __future__ import annotations

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from sandbox.crm.auth import LOCATION_INACTIVE, CompanyCaller
from sandbox.crm.errors import bad_request, forbidden, not_found, unprocessable
from sandbox.crm.oauth import SCOPE, NotInstalled, OAuthError, OAuthState, expires_in
from sandbox.crm.state import CrmState

router = APIRouter(prefix="/oauth", tags=["oauth"])

FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
GRANT_TYPES = ("authorization_code", "refresh_token", "client_credentials")
USER_TYPES = ("Company", "Location")
NOT_INSTALLED = "This app is not installed on the location"
# RFC 6749 section 5.1: token responses must not be cached.
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


async def _form(request: Request) -> dict[str, str]:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in FORM_TYPES:
        return {}
    form = await request.form()
    return {k: v.strip() for k, v in form.items() if isinstance(v, str) and v.strip()}


def _one_of(name: str, value: str | None, allowed: tuple[str, ...]) -> str | None:
    if value is None or value in allowed:
        return None
    return f"{name} must be one of the following values: {', '.join(allowed)}"


def _validate_token_form(form: dict[str, str]) -> None:
    required = ["client_id", "client_secret", "grant_type"]
    grant_type = form.get("grant_type")
    if grant_type == "authorization_code":
        required.append("code")
    elif grant_type == "refresh_token":
        required.append("refresh_token")
    messages = [f"{name} should not be empty" for name in required if name not in form]
    for name, allowed in (("grant_type", GRANT_TYPES), ("user_type", USER_TYPES)):
        wrong = _one_of(name, form.get(name), allowed)
        if wrong:
            messages.append(wrong)
    if messages:
        raise unprocessable(*messages)


def _oauth_error(exc: OAuthError) -> JSONResponse:
    return JSONResponse({"error": exc.error, "error_description": exc.description}, exc.status, headers=NO_STORE)


def _grant(oauth: OAuthState, form: dict[str, str]) -> dict:
    oauth.check_client(form["client_id"], form["client_secret"])
    grant_type = form["grant_type"]
    if grant_type == "authorization_code":
        return oauth.exchange_code(form["code"], form.get("user_type"), form.get("redirect_uri"))
    if grant_type == "refresh_token":
        return oauth.refresh(form["refresh_token"], form.get("user_type"))
    raise OAuthError(400, "unsupported_grant_type", f"{grant_type} is not supported by this app")


@router.post("/token")
async def token(request: Request) -> JSONResponse:
    """authorization_code and refresh_token grants, Company or Location user type."""
    form = await _form(request)
    _validate_token_form(form)
    try:
        # On worker threads like every other handler, so concurrent grants really race and the
        # OAuthState lock (not the event loop's serial order) is what keeps a rotation atomic.
        body = await run_in_threadpool(_grant, request.app.state.crm.oauth, form)
    except OAuthError as exc:
        return _oauth_error(exc)
    return JSONResponse(body, headers=NO_STORE)


@router.post("/locationToken")
async def location_token(request: Request, state: CompanyCaller) -> JSONResponse:
    """A location access token minted from the agency's company token (no refresh token)."""
    form = await _form(request)
    missing = [f"{name} should not be empty" for name in ("companyId", "locationId") if name not in form]
    if missing:
        raise unprocessable(*missing)
    oauth = state.oauth
    location_id = form["locationId"]
    loc = state.locations.get(location_id)
    if form["companyId"] != oauth.app.company_id or loc is None:
        raise bad_request(NOT_INSTALLED)
    if not loc.active:
        raise bad_request(LOCATION_INACTIVE)
    try:
        access, ttl = oauth.mint_location_token(location_id)
    except NotInstalled:
        raise bad_request(NOT_INSTALLED) from None
    body = {
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": expires_in(ttl),
        "scope": SCOPE,
        "locationId": location_id,
        "userId": oauth.app.user_id,
        "appId": oauth.app.app_id,
        "versionId": oauth.app.app_id,
    }
    return JSONResponse(body, headers=NO_STORE)


def _count(name: str, value: str) -> int:
    if not value.isdigit():
        raise unprocessable(f"{name} must be a number string")
    return int(value)


@router.get("/installedLocations")
def installed_locations(
    state: CompanyCaller,
    companyId: str | None = None,
    appId: str | None = None,
    skip: str = "0",
    limit: str = "20",
    isInstalled: bool | None = None,
    query: str | None = None,
    location_id: str | None = Query(None, alias="locationId"),
    versionId: str | None = None,
) -> dict:
    """The agency's locations and whether the app is installed on each, paged by skip/limit."""
    missing = [f"{name} should not be empty" for name, v in (("companyId", companyId), ("appId", appId)) if not v]
    if missing:
        raise unprocessable(*missing)
    start, size = _count("skip", skip), _count("limit", limit)
    oauth = state.oauth
    if companyId != oauth.app.company_id:
        raise forbidden("The token does not have access to this company")
    if appId != oauth.app.app_id:
        raise not_found(f"App with id {appId} not found")
    rows = _location_rows(state, isInstalled, query, location_id)
    oauth.count("installed_locations_calls")
    return {
        "locations": rows[start : start + size],
        "count": len(rows),
        "installToFutureLocations": oauth.install_to_future_locations,
    }


def _location_rows(state: CrmState, installed: bool | None, query: str | None, location_id: str | None) -> list:
    oauth = state.oauth
    needle = (query or "").casefold()
    rows = []
    with state.lock, oauth.lock:
        for loc in state.locations.values():
            installed_at = oauth.installed.get(loc.id)
            if installed is not None and (installed_at is not None) != installed:
                continue
            if needle and needle not in loc.name.casefold():
                continue
            if location_id and loc.id != location_id:
                continue
            row = {"_id": loc.id, "name": loc.name, "address": "", "isInstalled": installed_at is not None}
            if installed_at is not None:
                row["installedAt"] = installed_at
                row["versionId"] = oauth.app.app_id
            rows.append(row)
    return rows
