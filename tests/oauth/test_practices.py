"""Practices on OAuth through the real sync (`backfill_practice`): tokens that expire mid-run, a revoked install,
a suspended location, and no token or secret anywhere a person or Airflow could read.

Practice 0 reaches its CRM location through the marketplace app (built by `runtime.crm_hook`); practice 1 through
its Private Integration Token (today's way) or OAuth too, to show a failure stays with its own practice.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from cherry_sync.context import PracticeContext
from cherry_sync.hooks.oauth import LocationInactive, OAuthGrantRevoked, TokenService
from cherry_sync.operators.practice import _outcome
from cherry_sync.reasons import ReasonCode
from cherry_sync.registry import PracticeConfig
from cherry_sync.runtime import crm_hook
from cherry_sync.sync.practice_runs import backfill_practice
from tests.fixtures.sandbox_env import SandboxEnvs
from tests.oauth.conftest import OAuthConnections, oauth_connections, token_service
from tests.sync.conftest import SyncEnv


class OAuthEnv(SyncEnv):
    """SyncEnv whose practices may reach their location through the marketplace app."""

    conns: OAuthConnections | None = None
    tokens: TokenService | None = None

    def connect(self) -> TokenService:
        self.conns = oauth_connections(self.crm)
        self.tokens = token_service(self.conns, self.store, pacer=self.pacer)
        self.tokens.connect(self.crm.oauth_install("all"))
        return self.tokens

    def oauth_ctx(self, index: int) -> PracticeContext:
        info = self.cherry.practices[index]
        practice = self.use_practice(
            index,
            PracticeConfig.model_validate(
                {
                    "slug": self.slug(index),
                    "display_name": info.name[:200] or f"Practice {index}",
                    "timezone": info.timezone,
                    "cherry_conn_id": f"cherry_{index}",
                    "crm_auth": "oauth",
                    "crm_location_id": self.location_id(index),
                }
            ),
        )
        return PracticeContext(
            practice=practice,
            store=self.store,
            cherry=self.cherry_hook(index),
            crm=crm_hook(practice, self.pacer, tokens=self.tokens, retry=self.retry),
        )


@pytest.fixture
def oauth_env(sandbox_envs: SandboxEnvs, store) -> OAuthEnv:
    return sandbox_envs.build(OAuthEnv, store=store, cherry={"patients_per_practice": 200})


def assert_nowhere(secrets: list[str], *texts: str) -> None:
    assert secrets
    for secret in secrets:
        for where, text in enumerate(texts):
            assert secret not in text, f"a secret appears in text #{where}"


def test_tokens_expiring_mid_sync_cost_no_write(oauth_env: OAuthEnv) -> None:
    env = oauth_env
    env.crm.set_oauth_ttl(1.0)  # tokens live 1 s; the backfill takes several seconds
    env.latency_ms = 20
    env.clear_faults()
    env.connect()
    summary = backfill_practice(env.oauth_ctx(0), scope="all", page_size=50)

    writes = sum(env.crm_writes(0).values())
    assert writes >= 200, writes
    stats = env.crm.oauth_stats()
    assert stats["location_tokens"] >= 3 and stats["token_grants"]["refresh_token"] >= 2, stats
    assert stats["invalid_grant"] == 0
    crm_rejected = [r for r in env.store.open_rejections(env.slug(0)) if r.reason_code == ReasonCode.CRM_REJECTED]
    assert crm_rejected == []
    assert summary.patients.created == len(env.contacts(0))
    assert env.status_codes(0).get("400", 0) == 0


def test_revoked_install_fails_the_oauth_practice_only(oauth_env: OAuthEnv) -> None:
    env = oauth_env
    env.connect()
    backfill_practice(env.oauth_ctx(0), page_size=50)  # connected and working
    env.crm.oauth_revoke()

    with pytest.raises(OAuthGrantRevoked) as failed:
        backfill_practice(env.oauth_ctx(0), page_size=50)
    exc = failed.value
    assert exc.reason_code is ReasonCode.AUTH_FAILED and exc.ledger_details() == {"reason": "auth_failed"}
    outcome = _outcome(env.slug(0), exc)  # what the practice's task makes of it
    assert outcome.status == "failed" and not outcome.retry  # failed at once, no retries
    assert "reinstall the Cherry Sync marketplace app for the agency" in outcome.message
    assert "cherry_onboard" in outcome.message

    pit = backfill_practice(env.make_ctx(1), page_size=50)  # the PIT practice never notices
    assert pit.patients.created > 0


def test_suspended_location_fails_that_practice_alone(oauth_env: OAuthEnv) -> None:
    env = oauth_env
    env.connect()
    env.crm.set_location_active(env.location_id(0), False)

    with pytest.raises(LocationInactive) as failed:
        backfill_practice(env.oauth_ctx(0), page_size=50)
    assert failed.value.reason_code is ReasonCode.LOCATION_INACTIVE
    outcome = _outcome(env.slug(0), failed.value)
    assert outcome.status == "failed" and not outcome.retry

    other = backfill_practice(env.oauth_ctx(1), page_size=50)  # another OAuth practice of the same agency
    assert other.patients.created > 0


def test_no_token_or_secret_in_logs_errors_or_outputs(oauth_env: OAuthEnv, caplog, capfd) -> None:
    env = oauth_env
    caplog.set_level(logging.DEBUG)
    env.crm.set_oauth_ttl(1.0)
    tokens = env.connect()
    ctx = env.oauth_ctx(0)
    summary = backfill_practice(ctx, page_size=50)
    env.crm.oauth_expire_all()
    ctx.crm.list_pipelines()  # a 401, a refused company token, a refresh and a new mint
    env.crm.oauth_revoke()
    failures: list[Exception] = []
    for action in (lambda: backfill_practice(env.oauth_ctx(0)), lambda: tokens.connect("not-a-code")):
        try:
            action()
        except Exception as exc:  # noqa: BLE001 - every failure's text is checked below
            failures.append(exc)
    assert [type(f) for f in failures] == [OAuthGrantRevoked, OAuthGrantRevoked]

    issued = env.crm.oauth_issued_tokens()
    assert len(issued) >= 6
    secrets = issued + env.conns.secrets
    out, err = capfd.readouterr()
    exported: dict[str, Any] = summary.as_dict()
    # What the practice operator keeps of a failed run: the failure's ledger details and the calls made.
    failed_ctx = env.oauth_ctx(0)
    ledger_id = env.store.start_run("run-1", "cherry_backfill", env.slug(0), "backfill")
    details = {**failures[0].ledger_details(), "api_calls": failed_ctx.api_calls() | ctx.api_calls()}
    env.store.finish_run(ledger_id, "failed", None, details)
    ledger = env.store.list_runs(slug=env.slug(0))
    texts = [
        caplog.text,
        "\n".join(str(r.__dict__) for r in caplog.records),
        out,
        err,
        json.dumps(exported),
        "\n".join(f"{f!s} {f!r} {f.describe()} {f.ledger_details()} {_outcome('p', f).message}" for f in failures),
        repr(ctx.crm.credentials) + repr(tokens) + repr(tokens.app) + repr(ctx.crm),
        repr(ledger),
    ]
    assert_nowhere(secrets, *texts)
