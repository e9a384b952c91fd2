"""HighLevel-looking identifiers, deterministic for a given seed.

Real ids are 20 random alphanumerics (Firebase style); private integration tokens look like `pit-<uuid>`.
A seeded RNG behind a lock keeps runs repeatable while threads create records concurrently.
"""

from __future__ import annotations

import random
import string
import threading
import uuid

ALPHABET = string.ascii_letters + string.digits
ID_LENGTH = 20


class IdFactory:
    """Produces record ids, stage ids and tokens from one seeded stream."""

    def __init__(self, seed: int, stream: str = "records") -> None:
        self._rng = random.Random(f"{seed}:{stream}")
        self._lock = threading.Lock()

    def record_id(self) -> str:
        with self._lock:
            return "".join(self._rng.choices(ALPHABET, k=ID_LENGTH))

    def uuid(self) -> str:
        with self._lock:
            return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    def token(self) -> str:
        return f"pit-{self.uuid()}"


def is_record_id(value: str) -> bool:
    """True for strings shaped like HighLevel ids (bulk endpoints reject anything else per contact)."""
    return len(value) == ID_LENGTH and all(c in ALPHABET for c in value)
