"""Who may see the operations pages: whoever Airflow's auth manager lets read the runs of every Cherry Sync DAG.

The api-server mounts plugin apps beside its own, so a browser request carries what the Airflow UI holds: the JWT
in the `_token` cookie (set at login, sent with every same-origin request, the iframe's included), or an
`Authorization: Bearer` header from an API client. Airflow's own `get_user` (airflow.api_fastapi.core_api.security)
turns either into the user, exactly as for the REST API: no credential or an expired one is 401, a forged one 403.
The user must then pass the configured auth manager's `batch_is_authorized_dag(method="GET",
access_entity=DagAccessEntity.RUN)` for each Cherry Sync DAG, or the answer is 403 and the page shows nothing.
Airflow is imported inside the functions: the plugin module is also loaded by the scheduler and the workers, where
none of this runs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

log = logging.getLogger(__name__)

_bearer = HTTPBearer(auto_error=False)

# (user, dag ids) -> may the user read the runs of all of them
Authorizer = Callable[[Any, Iterable[str]], bool]


async def current_user(request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> Any:
    """The Airflow user of this request (bearer header first, then the UI's `_token` cookie); 401 without one."""
    from airflow.api_fastapi.core_api.security import get_user

    return await get_user(request, None, credentials)


def may_read_runs(user: Any, dag_ids: Iterable[str]) -> bool:
    """Ask the configured auth manager whether `user` may read the runs (GET, `DagAccessEntity.RUN`) of every DAG."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails
    from airflow.configuration import conf

    dag_ids = list(dag_ids)
    teams: dict[str, str | None] = {}
    if conf.getboolean("core", "multi_team", fallback=False):
        from airflow.models.dag import DagModel

        teams = DagModel.get_dag_id_to_team_name_mapping(dag_ids)
    requests = [
        {
            "method": "GET",
            "access_entity": DagAccessEntity.RUN,
            "details": DagDetails(id=dag_id, team_name=teams.get(dag_id)),
        }
        for dag_id in dag_ids
    ]
    return get_auth_manager().batch_is_authorized_dag(requests, user=user)


def login_url(request: Request) -> str:
    """The auth manager's login page, coming back to this page afterwards."""
    from airflow.api_fastapi.app import get_auth_manager

    return get_auth_manager().get_url_login(next_url=str(request.url))


def require_run_reader(dag_ids: Iterable[str], authorize: Authorizer = may_read_runs):
    """A FastAPI dependency: the user, if they may read the runs of `dag_ids`; 403 otherwise."""
    dag_ids = tuple(dag_ids)

    def dependency(user: Any = Depends(current_user)) -> Any:
        if not authorize(user, dag_ids):
            # The user's name is an Airflow login, not patient data; it tells an operator who was refused.
            log.info("operations page refused to %s: may not read the Cherry Sync DAG runs", user.get_name())
            raise HTTPException(status.HTTP_403_FORBIDDEN, "You may not read the Cherry Sync DAG runs.")
        return user

    return dependency
