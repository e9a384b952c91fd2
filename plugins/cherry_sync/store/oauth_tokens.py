"""The CRM's OAuth tokens in the store: Fernet ciphertext per subject, and the row lock every rotation runs under.

A subject is the agency ('company', its companyId: the one refreshable token pair) or a location ('location', its
locationId: a token minted from the company token). Tokens are encrypted before they reach this module's
queries (`TokenCipher`, keys from the `cherry_sync_token_key` connection) and are never logged.

`locked_oauth_token` is the single-flight primitive: every mint or refresh, in every thread, process and host,
happens inside it. PostgreSQL: the subject's row is created if missing (`ON CONFLICT DO NOTHING`) and locked with
`SELECT ... FOR UPDATE`; SQLite: the store's transactions start with `BEGIN IMMEDIATE` (store/engine.py), which holds
the database's write lock. Whoever gets the lock re-reads the row (another worker may have rotated meanwhile) and
saves the new token in the same transaction, so a rotated refresh token is never dropped before its successor is
stored.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy import Connection, delete, select, update

from cherry_sync.errors import CherrySyncError, Disposition
from cherry_sync.reasons import ReasonCode
from cherry_sync.store.base import StoreBase
from cherry_sync.store.schema_oauth import crm_oauth_tokens as tokens

COMPANY = "company"
LOCATION = "location"


class TokenKeyError(CherrySyncError):
    """The token key connection holds no usable Fernet key, or none of its keys opens the stored tokens."""

    reason_code = ReasonCode.AUTH_FAILED
    disposition = Disposition.FAIL


class TokenCipher:
    """Fernet encryption of stored tokens. Several keys (newest first) decrypt; the first one encrypts, so a key is
    rotated by putting the new one in front and keeping the old one until every token was re-written."""

    def __init__(self, keys: str | Sequence[str], *, source: str = "the token key") -> None:
        parts = [k.strip() for k in keys.split(",")] if isinstance(keys, str) else [k.strip() for k in keys]
        parts = [k for k in parts if k]
        if not parts:
            raise TokenKeyError(f"{source} holds no Fernet key (generate one with Fernet.generate_key())")
        fernets = []
        for number, key in enumerate(parts, start=1):
            try:
                fernets.append(Fernet(key.encode()))
            except (ValueError, TypeError):
                # Never the key itself: which one of the list is broken is enough.
                raise TokenKeyError(
                    f"{source}: key #{number} is not a Fernet key (32 url-safe base64-encoded bytes)"
                ) from None
        self._fernet = MultiFernet(fernets)
        self._source = source

    def __repr__(self) -> str:
        return "TokenCipher(...)"

    def encrypt(self, token: str) -> str:
        return self._fernet.encrypt(token.encode()).decode()

    def decrypt(self, ciphertext: str) -> str:
        try:
            return self._fernet.decrypt(ciphertext.encode()).decode()
        except InvalidToken:
            raise TokenKeyError(
                f"the stored CRM tokens cannot be decrypted with {self._source}: put back the key that encrypted "
                "them (after the new one), or run the cherry_onboard DAG with a new authorization code"
            ) from None


@dataclass(frozen=True, slots=True)
class StoredToken:
    """One subject's row. Token fields are ciphertext; `access_token` None: no token yet (a lock-only row)."""

    subject_type: str
    subject_id: str
    access_token: str | None = field(repr=False)
    refresh_token: str | None = field(repr=False)
    expires_at: datetime | None
    generation: int
    updated_at: datetime


class TokenLock:
    """A subject's row, locked until the `locked_oauth_token` block ends (its transaction commits)."""

    def __init__(self, conn: Connection, subject_type: str, subject_id: str, clock: Callable[[], datetime]) -> None:
        self._conn = conn
        self.subject_type = subject_type
        self.subject_id = subject_id
        self._clock = clock
        self.current = self.reread()

    def reread(self) -> StoredToken:
        """The row as committed now (inside the lock nobody else can change it; outside, the latest)."""
        row = self._conn.execute(
            select(tokens)
            .where(tokens.c.subject_type == self.subject_type, tokens.c.subject_id == self.subject_id)
            .with_for_update()
        ).one()
        self.current = StoredToken(**row._asdict())
        return self.current

    def save(self, access_token: str, refresh_token: str | None, expires_at: datetime) -> StoredToken:
        """Store a rotated token (ciphertext) in the lock's transaction; `generation` goes up by one."""
        self._conn.execute(
            update(tokens)
            .where(tokens.c.subject_type == self.subject_type, tokens.c.subject_id == self.subject_id)
            .values(
                access_token=access_token,
                refresh_token=refresh_token,
                expires_at=expires_at,
                generation=tokens.c.generation + 1,
                updated_at=self._clock(),
            )
        )
        return self.reread()


class OAuthTokenQueries(StoreBase):
    """Encrypted OAuth tokens per subject, and the row lock rotations take."""

    def oauth_token(self, subject_type: str, subject_id: str) -> StoredToken | None:
        """The subject's row as committed now, without waiting for a lock (None: never stored)."""
        with self.engine.begin() as conn:
            row = conn.execute(
                select(tokens).where(tokens.c.subject_type == subject_type, tokens.c.subject_id == subject_id)
            ).first()
        return StoredToken(**row._asdict()) if row is not None else None

    @contextmanager
    def locked_oauth_token(self, subject_type: str, subject_id: str) -> Iterator[TokenLock]:
        """Hold the subject's row lock for the block (see the module docstring); the block's `save` commits when
        it ends, an exception rolls back (a row created only for the lock goes with it)."""
        with self.engine.begin() as conn:
            conn.execute(
                self._insert(tokens)
                .values(
                    subject_type=subject_type,
                    subject_id=subject_id,
                    access_token=None,
                    refresh_token=None,
                    expires_at=None,
                    generation=0,
                    updated_at=self._now(),
                )
                .on_conflict_do_nothing(index_elements=[tokens.c.subject_type, tokens.c.subject_id])
            )
            yield TokenLock(conn, subject_type, subject_id, self._now)

    def forget_oauth_tokens(self, subject_type: str, subject_ids: Sequence[str] | None = None) -> int:
        """Delete stored tokens of a subject type (all, or these ids); rows removed."""
        stmt = delete(tokens).where(tokens.c.subject_type == subject_type)
        if subject_ids is not None:
            stmt = stmt.where(tokens.c.subject_id.in_(list(subject_ids)))
        with self.engine.begin() as conn:
            return conn.execute(stmt).rowcount
