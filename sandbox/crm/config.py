"""Start-up settings of the CRM sandbox (what `create_app` and the CLI take)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from sandbox.common.faults import FaultSettings
from sandbox.common.ratelimit import RateLimitSettings

MB = 1024 * 1024


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
    seed_pipelines: bool = Field(True, description="give every location the 'Patient Journey' pipeline")
    max_upload_bytes: int = Field(25 * MB, ge=1, description="media upload limit for non-video files")
    max_video_upload_bytes: int = Field(500 * MB, ge=1, description="media upload limit for video/*")
