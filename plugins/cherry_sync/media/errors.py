"""Why an asset is not imported. Messages name assets (names, categories, sizes): never patient data.

The reasons are `ReasonCode` members (the media block: `unsupported_type`, `too_large`, ... and `crm_rejected`),
kept in rejected_records with entity "asset" and one of the stages below.
"""

from __future__ import annotations

from cherry_sync.errors import CherrySyncError, Disposition
from cherry_sync.reasons import ReasonCode

# Stages, as kept in rejected_records.
LIST = "list"
VALIDATE = "validate"
DOWNLOAD = "download"
UPLOAD = "upload"


class AssetRejected(CherrySyncError):
    """This asset breaks a rule; it is recorded as a rejection and the others go on."""

    def __init__(self, reason_code: ReasonCode, stage: str, message: str) -> None:
        self.reason_code = reason_code
        self.stage = stage
        self.message = message
        super().__init__(f"{reason_code}: {message}")

    def __reduce__(self) -> tuple[type[AssetRejected], tuple[object, ...]]:
        return (type(self), (self.reason_code, self.stage, self.message))


class AssetGone(Exception):
    """The asset disappeared between the listing and the download (it is retired, not rejected)."""


class AssetFolderError(CherrySyncError):
    """The configured asset folder cannot be read (wrong URI, missing, not a folder, no access)."""

    reason_code = ReasonCode.ASSET_FOLDER_UNAVAILABLE
    disposition = Disposition.FAIL
    advice = "Check the asset_folder setting."
