"""The operations pages: a small read-only FastAPI app, HTML rendered on the server from Jinja templates.

Routes (relative to where the app is mounted, `/cherry-sync` on Airflow's api-server):
- `GET /`: the practices overview;
- `GET /practices/{slug}`: one practice (runs chart, runs, open rejections by reason, CSV per run);
- `GET /practices/{slug}/outcomes.csv?run_id=…`: a run's per-record outcomes;
- `GET /lookup?practice=…&source_id=…|crm_id=…`: where one record went.
Every route needs a user who may read the runs of the Cherry Sync DAGs (auth.py). Pages show ids, counts, states
and times; never a patient's values, never a secret.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any
from urllib.parse import quote

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from cherry_sync.ops import views
from cherry_sync.ops.auth import Authorizer, login_url, may_read_runs, require_run_reader
from cherry_sync.ops.charts import runs_chart
from cherry_sync.ops.export import outcomes_csv

log = logging.getLogger(__name__)

MOUNT = "/cherry-sync"  # where the plugin mounts the app; the Airflow UI lives at the path before it
ID_MAX = 128  # ids are at most this long in the store
_ID = re.compile(r"^[A-Za-z0-9_.:@+\-]{1,128}$")
_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")


@lru_cache(maxsize=1)
def _templates() -> Environment:
    env = Environment(
        loader=PackageLoader("cherry_sync", "templates/ops"),
        autoescape=select_autoescape(enabled_extensions=("html.j2",), default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = _when
    env.filters["took"] = _took
    env.globals["chart"] = runs_chart
    return env


def _when(value: datetime | None) -> str:
    return "" if value is None else f"{value:%Y-%m-%d %H:%M:%S} UTC"


def _took(value: timedelta | None) -> str:
    if value is None:
        return "running"
    seconds = int(value.total_seconds())
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m {seconds:02d}s" if minutes else f"{seconds}s"


def _default_store():
    from cherry_sync.context import STORE_CONN_ID
    from cherry_sync.store import get_store

    return get_store(STORE_CONN_ID)


class _Links:
    """URLs the pages link to: this app's, and the Airflow UI's (opened in the whole window, not the frame)."""

    def __init__(self, request: Request) -> None:
        self.base = request.scope.get("root_path", "").rstrip("/")
        self.airflow = self.base.removesuffix(MOUNT)

    def home(self) -> str:
        return f"{self.base}/"

    def practice(self, slug: str) -> str:
        return f"{self.base}/practices/{quote(slug, safe='')}"

    def csv(self, slug: str, run_id: str) -> str:
        return f"{self.practice(slug)}/outcomes.csv?run_id={quote(run_id, safe='')}"

    def lookup(self, slug: str | None = None, **ids: str) -> str:
        query = "&".join(f"{k}={quote(v, safe='')}" for k, v in (("practice", slug or ""), *ids.items()) if v)
        return f"{self.base}/lookup" + (f"?{query}" if query else "")

    def dag_run(self, dag_id: str, run_id: str) -> str:
        return f"{self.airflow}/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"

    def task(self, dag_id: str, run_id: str, task_id: str) -> str:
        return f"{self.dag_run(dag_id, run_id)}/tasks/{quote(task_id, safe='')}"


def _page(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    html = _templates().get_template(template).render(links=_Links(request), **context)
    # The pages are framed by the Airflow UI (same origin) and hold nothing a cache should keep.
    headers = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
    return HTMLResponse(html, status_code=status_code, headers=headers)


def _slug(value: str) -> str:
    if not _SLUG.match(value):
        raise HTTPException(404, "No such practice.")
    return value


def _clean_id(value: str | None) -> str | None:
    value = (value or "").strip()
    if not value:
        return None
    if not _ID.match(value):
        raise HTTPException(422, "An id is letters, digits and . _ - : @ + (at most 128).")
    return value


def create_app(store: Callable[[], Any] | None = None, authorize: Authorizer | None = None) -> FastAPI:
    """The operations app. `store()` defaults to the sync store's connection, resolved per request (never when the
    api-server loads the plugin); `authorize(user, dag_ids)` to the configured auth manager."""
    store = store or _default_store
    reader = require_run_reader(views.SYNC_DAG_IDS, authorize or may_read_runs)
    app = FastAPI(
        title="Cherry Sync operations",
        description="Read-only operations pages of Cherry Sync.",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )

    @app.exception_handler(HTTPException)
    async def _refused(request: Request, exc: HTTPException) -> Response:
        wants_html = "text/html" in request.headers.get("accept", "")
        if exc.status_code == 401 and wants_html and request.method == "GET":
            return RedirectResponse(login_url(request), status_code=303)
        if wants_html:
            return _page(request, "error.html.j2", exc.status_code, status=exc.status_code, detail=exc.detail)
        return Response(str(exc.detail), status_code=exc.status_code, media_type="text/plain")

    @app.get("/", response_class=HTMLResponse)
    def overview(request: Request, _user: Any = Depends(reader)) -> HTMLResponse:
        data = views.overview(store())
        return _page(request, "overview.html.j2", data=data)

    @app.get("/practices/{slug}", response_class=HTMLResponse)
    def practice(request: Request, slug: str, _user: Any = Depends(reader)) -> HTMLResponse:
        data = views.practice_page(store(), _slug(slug))
        if data is None:
            raise HTTPException(404, "No such practice.")
        return _page(request, "practice.html.j2", data=data)

    @app.get("/practices/{slug}/outcomes.csv")
    def outcomes(
        slug: str, run_id: str = Query(min_length=1, max_length=250), _user: Any = Depends(reader)
    ) -> StreamingResponse:
        sync_store = store()
        rows = sync_store.run_outcomes(run_id, _slug(slug))
        filename = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{slug}-{run_id}")[:150] + ".csv"
        log.info("outcomes CSV of practice %s, run %s", slug, run_id)
        return StreamingResponse(
            _iterate_in_threads(outcomes_csv(rows)),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"},
        )

    @app.get("/lookup", response_class=HTMLResponse)
    def lookup(
        request: Request,
        practice: str = "",
        source_id: str = Query("", max_length=ID_MAX),
        crm_id: str = Query("", max_length=ID_MAX),
        _user: Any = Depends(reader),
    ) -> HTMLResponse:
        sync_store = store()
        slugs = [p.slug for p in sync_store.list_practices()]
        slug = _slug(practice) if practice else None
        source, crm = _clean_id(source_id), _clean_id(crm_id)
        result = views.lookup(sync_store, slug, source_id=source, crm_id=crm) if (source or crm) else None
        return _page(request, "lookup.html.j2", result=result, slugs=slugs, practice=slug or "")

    return app


async def _iterate_in_threads(chunks):
    """Drive a blocking generator (database reads) from the event loop one chunk at a time."""
    sentinel = object()
    while True:
        chunk = await run_in_threadpool(next, chunks, sentinel)
        if chunk is sentinel:
            return
        yield chunk
