"""Seeded fake patients' identities: names, birth dates, phones and e-mail addresses as people type them.

Names come from Faker's en_US frequency tables, sampled with our own seeded RNG (fast, and stable for a
pinned Faker). Phone numbers use real area codes with the 555 exchange, so they look valid but reach
nobody; e-mail domains are the reserved example.* ones. Contact data is deliberately messy: several phone
formats, missing values, upper-case or padded e-mails, and families sharing a phone or an e-mail.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache
from itertools import accumulate

from sandbox.cherry.regions import ALL_AREA_CODES

EMAIL_DOMAINS = ("example.com", "example.net", "example.org", "mail.example.com", "inbox.example.net")

PHONE_FORMATS = (
    ("({a}) {e}-{l}", 30),
    ("{a}.{e}.{l}", 12),
    ("+1 {a} {e} {l}", 12),
    ("{a}{e}{l}", 16),
    ("{a}-{e}-{l}", 18),
    ("+1{a}{e}{l}", 6),
    ("1-{a}-{e}-{l}", 3),
    ("({a}){e}-{l}", 3),
)

_PHONE_FORMAT_TEXTS = tuple(f for f, _ in PHONE_FORMATS)
_PHONE_FORMAT_CUM = tuple(accumulate(w for _, w in PHONE_FORMATS))


@dataclass(frozen=True)
class Identity:
    """Who a patient is, as they entered it on the application."""

    first_name: str
    last_name: str
    date_of_birth: str | None
    phone: str | None
    email: str | None


@lru_cache(maxsize=1)
def name_tables() -> dict[str, tuple[list[str], list[float]]]:
    from faker.providers.person.en_US import Provider

    def table(weights: dict[str, float]) -> tuple[list[str], list[float]]:
        names = list(weights)
        return names, list(accumulate(weights[n] for n in names))

    return {
        "female": table(Provider.first_names_female),
        "male": table(Provider.first_names_male),
        "last": table(Provider.last_names),
    }


def pick_weighted(rng: random.Random, table: tuple[list[str], list[float]]) -> str:
    names, cum = table
    return rng.choices(names, cum_weights=cum, k=1)[0]


def format_phone(rng: random.Random, digits: str) -> str:
    """Ten digits -> one of the formats people type."""
    fmt = rng.choices(_PHONE_FORMAT_TEXTS, cum_weights=_PHONE_FORMAT_CUM, k=1)[0]
    return fmt.format(a=digits[:3], e=digits[3:6], l=digits[6:])


def _odd_email(rng: random.Random, email: str) -> str:
    roll = rng.random()
    if roll < 0.04:
        return email.upper()
    if roll < 0.07:
        return f"  {email} "
    if roll < 0.09:
        local, domain = email.split("@", 1)
        return f"{local.title()}@{domain.capitalize()}"
    return email


class PeopleFactory:
    """Makes unique-ish identities for one practice (duplicates only where a family shares contact data)."""

    def __init__(self, rng: random.Random, area_codes: tuple[str, ...], today: date) -> None:
        self.rng = rng
        self.area_codes = area_codes
        self.today = today
        self._phones: set[str] = set()
        self._emails: set[str] = set()
        self._families: list[Identity] = []

    def _new_phone_digits(self) -> str:
        rng = self.rng
        while True:
            codes = self.area_codes if rng.random() < 0.85 else ALL_AREA_CODES
            digits = f"{rng.choice(codes)}555{rng.randrange(10_000):04d}"
            if digits not in self._phones:
                self._phones.add(digits)
                return digits

    def _new_email(self, first: str, last: str) -> str:
        rng = self.rng
        f, s = first.lower(), last.lower().replace(" ", "").replace("'", "")
        local = rng.choice((f"{f}.{s}", f"{f}{s}", f"{f[0]}{s}", f"{f}_{s}", f"{f}{s[0]}", f"{s}.{f}"))
        if rng.random() < 0.35:
            local += str(rng.randrange(1, 99))
        email = f"{local}@{rng.choice(EMAIL_DOMAINS)}"
        n = 2
        while email in self._emails:
            email = f"{local}{n}@{email.split('@', 1)[1]}"
            n += 1
        self._emails.add(email)
        return email

    def _birth_date(self) -> str | None:
        rng = self.rng
        if rng.random() < 0.03:
            return None
        age_days = rng.randrange(18 * 366, 80 * 365)
        return (self.today - timedelta(days=age_days)).isoformat()

    def identity(self) -> Identity:
        rng = self.rng
        tables = name_tables()
        first = pick_weighted(rng, tables["female"] if rng.random() < 0.78 else tables["male"])
        if self._families and rng.random() < 0.06:
            return self._family_member(first)
        last = pick_weighted(rng, tables["last"])
        roll = rng.random()
        phone_digits = None if roll < 0.06 else self._new_phone_digits()
        email = None if 0.04 <= roll < 0.12 else _odd_email(rng, self._new_email(first, last))
        if roll < 0.02:  # nobody to contact: neither phone nor e-mail
            email = None
        phone = format_phone(rng, phone_digits) if phone_digits else None
        person = Identity(first, last, self._birth_date(), phone, email)
        if phone or email:
            self._families.append(person)
        return person

    def _family_member(self, first: str) -> Identity:
        """A relative of an earlier patient: same last name, sharing that patient's phone or e-mail."""
        rng = self.rng
        head = rng.choice(self._families)
        share_phone = head.phone is not None and (head.email is None or rng.random() < 0.5)
        if share_phone:
            # The same number, typed the same way or differently.
            digits = "".join(ch for ch in head.phone if ch.isdigit())[-10:]
            phone = head.phone if rng.random() < 0.5 else format_phone(rng, digits)
            email = _odd_email(rng, self._new_email(first, head.last_name)) if rng.random() < 0.6 else None
        else:
            email = head.email.strip() if rng.random() < 0.7 else head.email.strip().upper()
            phone = format_phone(rng, self._new_phone_digits()) if rng.random() < 0.7 else None
        return Identity(first, head.last_name, self._birth_date(), phone, email)
