"""Settings of one Cherry sandbox instance."""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator

from sandbox.common.faults import FaultSettings
from sandbox.common.ratelimit import RateLimitSettings


def cherry_rate_limits(burst: int = 20, window_seconds: float = 1.0, daily: int = 100_000) -> RateLimitSettings:
    """Cherry's documented default: 20 requests per second and 100,000 per day, per API key."""
    return RateLimitSettings(burst_limit=burst, burst_window_seconds=window_seconds, daily_limit=daily)


def today_utc() -> datetime:
    return datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


class CherrySandboxConfig(BaseModel):
    """Seed, size, clock and misbehaviour of a Cherry sandbox. Same values -> same data, byte for byte."""

    model_config = ConfigDict(extra="forbid")

    seed: int = 7
    practices: int = Field(3, ge=1, le=100)
    patients_per_practice: int = Field(200, ge=0, le=100_000)
    now: datetime = Field(default_factory=today_utc, description="the sandbox clock's starting point (UTC)")
    history_days: int = Field(730, ge=7, le=3650, description="how far back the seeded history goes")
    rate_limits: RateLimitSettings = Field(default_factory=cherry_rate_limits)
    faults: FaultSettings = Field(default_factory=FaultSettings)
    malformed_share: float = Field(0.0, ge=0, le=1, description="share of patients seeded malformed")
    redelivery_share: float = Field(
        0.01, ge=0, le=0.5, description="share of seeded events delivered a second time later in the feed"
    )
    log_level: str = "warning"

    @field_validator("now")
    @classmethod
    def _utc_whole_seconds(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC).replace(microsecond=0)
