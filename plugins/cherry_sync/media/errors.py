"""Why an asset is not imported. Messages name assets (names, categories, sizes): never patient data."""

from __future__ import annotations

# Reason codes, as kept in rejected_records (entity "asset").
UNSUPPORTED_TYPE = "unsupported_type"  # a type the CRM media library does not take
TOO_LARGE = "too_large"  # over the CRM's 25 MB upload limit
EMPTY_FILE = "empty_file"
TYPE_MISMATCH = "type_mismatch"  # the bytes are not what the declared type says (e.g. a renamed archive)
CHECKSUM_MISMATCH = "checksum_mismatch"  # the downloaded bytes' sha256 differs from the listing's
NO_CATEGORY = "no_category"  # a file at the top of the asset folder, outside any category folder
MALFORMED_ASSET = "malformed_asset"  # a Cherry listing entry without an id, name, category or type
DOWNLOAD_FAILED = "download_failed"  # Cherry refused the download (4xx other than 404)
CRM_REJECTED = "crm_rejected"  # the CRM refused the upload (4xx)

# Stages, as kept in rejected_records.
LIST = "list"
VALIDATE = "validate"
DOWNLOAD = "download"
UPLOAD = "upload"


class AssetRejected(Exception):
    """This asset breaks a rule; it is recorded as a rejection and the others go on."""

    def __init__(self, reason_code: str, stage: str, message: str) -> None:
        self.reason_code = reason_code
        self.stage = stage
        self.message = message
        super().__init__(f"{reason_code}: {message}")


class AssetGone(Exception):
    """The asset disappeared between the listing and the download (it is retired, not rejected)."""


class AssetFolderError(Exception):
    """The configured asset folder cannot be read (wrong URI, missing, not a folder, no access)."""

    reason_code = "asset_folder_unavailable"
