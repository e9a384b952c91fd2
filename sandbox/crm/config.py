"""Start-up settings of the CRM sandbox (what `create_app` and the CLI take)."""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator

from sandbox.cherry.regions import REGIONS
from sandbox.common.faults import FaultSettings
from sandbox.common.ratelimit import RateLimitSettings

MB = 1024 * 1024
# Seeded location i gets zone i (cycling): the Cherry sandbox places its practice i in the same zone, so a Cherry
# practice and the CRM location paired with it by position agree, as a real practice's accounts do.
SEEDED_LOCATION_TIMEZONES: tuple[str, ...] = tuple(region.timezone for region in REGIONS)


class CrmSandboxConfig(BaseModel):
    """Everything that shapes one CRM sandbox run. The same seed gives the same ids and tokens."""

    model_config = ConfigDict(extra="forbid")

    seed: int = 0
    locations: int = Field(3, ge=0, le=10_000, description="locations (sub-accounts) seeded at start")
    host: str = Field("127.0.0.1", description="loopback only; used by the CLI, ignored by create_app")
    port: int = Field(0, ge=0, le=65535, description="0 picks a free port; used by the CLI")
    rate_limits: RateLimitSettings = Field(default_factory=RateLimitSettings)
    faults: FaultSettings = Field(default_factory=FaultSettings)
    search_lag_seconds: float = Field(
        0.0, ge=0, le=600, description="delay before a write shows in POST /contacts/search (index lag)"
    )
    allow_duplicate_contacts: bool = Field(False, description="default 'Allow Duplicate Contact' of new locations")
    allow_duplicate_opportunities: bool = Field(False, description="default 'Allow Duplicate Opportunity'")
    location_timezones: tuple[str, ...] = Field(
        SEEDED_LOCATION_TIMEZONES,
        min_length=1,
        description="IANA zones of the seeded locations, cycled (default: the Cherry sandbox's practice zones)",
    )
    seed_pipelines: bool = Field(True, description="give every location the 'Patient Journey' pipeline")
    max_upload_bytes: int = Field(25 * MB, ge=1, description="media upload limit for non-video files")
    max_video_upload_bytes: int = Field(500 * MB, ge=1, description="media upload limit for video/*")
    oauth_access_token_ttl_seconds: float = Field(
        86399.0, gt=0, le=10 * 365 * 86400, description="life of OAuth access tokens (HighLevel: 86399 s)"
    )

    @field_validator("location_timezones")
    @classmethod
    def _known_zones(cls, zones: tuple[str, ...]) -> tuple[str, ...]:
        for zone in zones:
            check_zone(zone)
        return zones


def check_zone(zone: str) -> str:
    """`zone` if it is an IANA time zone name, else ValueError (what HighLevel's location settings accept)."""
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown IANA time zone {zone!r}") from None
    return zone
