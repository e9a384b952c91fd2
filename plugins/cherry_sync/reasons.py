"""Reason codes: the one vocabulary of ledgers, rejections, failures and runbooks.

Why a record was rejected or a field dropped, why an API call, a CRM write or an asset failed, why a practice's task
failed, was deferred or skipped, why a step ran or did not. Every code is a member of `ReasonCode`; the stored
strings (run ledger details, `rejected_records.reason_code`, summaries in XCom) are the members' values.
"""

from __future__ import annotations

from enum import StrEnum


class ReasonCode(StrEnum):
    """Every reason code of the package, in blocks: API calls, CRM writes, media assets, configuration, the
    monthly email, smart-list verification, run time; then why a record was rejected (fatal) or a field was
    dropped (warning).

    Record rejections: the record codes (the last blocks) except those in `WARNING_CODES`.
    Warnings (the record is kept, the field is dropped and not written): `invalid_email`,
    `invalid_phone`, `invalid_date` and `implausible_date` (today only `date_of_birth` is a calendar
    date in the contract; every other time field is a timestamp and rejects as `invalid_timestamp`), and
    `shared_contact_point`, raised by the sync rather than the parser: the patient's e-mail or phone is held by
    another CRM contact (a relative's), so the patient's own contact is written without it.
    """

    # -- API calls (hooks): why a call to Cherry or the CRM failed, after the hook's own retries ------------------
    API_ERROR = "api_error"  # any other refusal
    AUTH_FAILED = "auth_failed"  # 401: the key or token is wrong or revoked
    FORBIDDEN = "forbidden"  # 403: authenticated but not allowed (wrong location, scopes)
    KEY_NOT_ACTIVATED = "key_not_activated"  # 403 from Cherry: the practice has not activated its key yet
    NOT_FOUND = "not_found"  # 404
    VALIDATION_FAILED = "validation_failed"  # 400 / 422: the API refused the request
    RATE_LIMITED = "rate_limited"  # 429 for the burst window
    DAILY_BUDGET_EXHAUSTED = "daily_budget_exhausted"  # the location's daily request budget is spent
    CANCELLED = "cancelled"  # the task is ending: no new attempt was sent
    SERVER_ERROR = "server_error"  # 5xx
    TIMEOUT = "timeout"  # no answer within the read timeout
    UNAVAILABLE = "unavailable"  # no connection at all (refused, DNS, reset)
    AMBIGUOUS_WRITE = "ambiguous_write"  # a write may or may not have landed, and there is no way to check
    MALFORMED_RESPONSE = "malformed_response"  # a 2xx answer outside the API's contract

    # -- CRM writes: one record's or contact's write refused (kept in rejected_records) ---------------------------
    CRM_REJECTED = "crm_rejected"  # the CRM refused this contact, opportunity, tag or upload (4xx)
    CONTACT_CONFLICT = "contact_conflict"  # the patient resolves to a contact another patient holds
    CRM_CONTACT_MISSING = "crm_contact_missing"  # the contact the store recorded is gone from the CRM

    # -- media assets: why an asset is not imported (rejected_records, entity "asset") ----------------------------
    UNSUPPORTED_TYPE = "unsupported_type"  # a type the CRM media library does not take
    TOO_LARGE = "too_large"  # over the CRM's 25 MB upload limit
    EMPTY_FILE = "empty_file"
    TYPE_MISMATCH = "type_mismatch"  # the bytes are not what the declared type says (e.g. a renamed archive)
    CHECKSUM_MISMATCH = "checksum_mismatch"  # the downloaded bytes' sha256 differs from the listing's
    NO_CATEGORY = "no_category"  # a file at the top of the asset folder, outside any category folder
    MALFORMED_ASSET = "malformed_asset"  # a Cherry listing entry without an id, name, category or type
    DOWNLOAD_FAILED = "download_failed"  # Cherry refused the download (4xx other than 404)

    # -- configuration: a person must fix the registry, a connection or the CRM location --------------------------
    PRACTICE_UNAVAILABLE = "practice_unavailable"  # unknown, disabled or invalid in the registry: skipped
    CONNECTION_MISSING = "connection_missing"  # an Airflow connection the registry names is not defined
    CUSTOM_FIELD_CONFLICT = "custom_field_conflict"  # a field with our key has another data type
    FIELDS_NOT_PROVISIONED = "fields_not_provisioned"  # a Cherry custom field has no id in the location
    PIPELINE_NOT_FOUND = "pipeline_not_found"  # the registry's opportunity pipeline or stage is not there
    TIMEZONE_MISMATCH = "timezone_mismatch"  # the registry's, Cherry's and the location's zones disagree
    INVALID_TIMEZONE = "invalid_timezone"  # not an IANA zone name
    ASSET_FOLDER_UNAVAILABLE = "asset_folder_unavailable"  # the configured asset folder cannot be read
    SMTP_NOT_CONFIGURED = "smtp_not_configured"  # the SMTP connection is missing or incomplete
    INVALID_REPORT_WINDOW = "invalid_report_window"  # a malformed end date, or a day that has not ended yet
    LOCATION_INACTIVE = "location_inactive"  # the CRM location is suspended: that practice alone fails

    # -- the monthly email ----------------------------------------------------------------------------------------
    SEND_INTERRUPTED = "send_interrupted"  # an earlier attempt died mid-send: delivery unknown
    SEND_FAILED = "send_failed"  # the SMTP server did not accept the message
    NO_RECIPIENTS = "no_recipients"  # the practice has no report recipients: skipped
    NOT_SYNCED = "not_synced"  # the practice has no synced data yet: store figures unavailable
    SKIPPED = "skipped"  # a source not asked, because what it would be compared with is unavailable

    # -- smart-list verification: why it ran, or why not ----------------------------------------------------------
    VERIFY_DISABLED = "disabled"  # verify=never
    VERIFY_REQUESTED = "requested"  # verify=always
    MEMBERSHIP_CHANGED = "membership_changed"
    NEVER_VERIFIED = "never_verified"
    VERIFY_CADENCE = "cadence"  # the last verification is older than the cadence
    VERIFY_NOT_DUE = "not_due"
    NO_MEMBERS = "no_members"

    # -- run time -------------------------------------------------------------------------------------------------
    TASK_TIMEOUT = "task_timeout"  # the task ran past its execution_timeout (AirflowTaskTimeout)
    UNEXPECTED_ERROR = "unexpected_error"  # an exception the product does not raise on purpose (retried)

    # -- records: why a Cherry record was rejected or one of its fields dropped -----------------------------------
    INVALID_RECORD = "invalid_record"  # not a JSON object, or a field has the wrong JSON type
    MISSING_ID = "missing_id"  # the record's own id is absent, null or blank
    INVALID_ID = "invalid_id"  # an id (own or foreign) is not a short opaque token
    MISSING_FIELD = "missing_field"  # a required field other than the id is absent or null
    INVALID_MONEY = "invalid_money"  # not a non-negative decimal with at most two places
    INVALID_NUMBER = "invalid_number"  # a non-money number (term months, APR) is out of range or not numeric
    INVALID_TIMESTAMP = "invalid_timestamp"  # not an RFC 3339 timestamp with a UTC offset
    UNKNOWN_STATUS = "unknown_status"  # an enum value outside the contract
    UNKNOWN_EVENT_TYPE = "unknown_event_type"  # an event type outside the contract
    OVERSIZE_TEXT = "oversize_text"  # a text value longer than its documented limit
    NO_CONTACT_POINT = "no_contact_point"  # neither a usable phone nor a usable email
    INCONSISTENT_RECORD = "inconsistent_record"  # fields contradict each other (refund > amount, ids differ)
    # Warnings only: the record survives without the field.
    INVALID_EMAIL = "invalid_email"
    INVALID_PHONE = "invalid_phone"
    INVALID_DATE = "invalid_date"  # malformed or impossible calendar date (2023-02-30)
    IMPLAUSIBLE_DATE = "implausible_date"  # a real date that cannot be true: placeholder, pre-1900, future
    SHARED_CONTACT_POINT = "shared_contact_point"  # e-mail or phone held by another contact: left off this one


WARNING_CODES: frozenset[ReasonCode] = frozenset(
    {
        ReasonCode.INVALID_EMAIL,
        ReasonCode.INVALID_PHONE,
        ReasonCode.INVALID_DATE,
        ReasonCode.IMPLAUSIBLE_DATE,
        ReasonCode.SHARED_CONTACT_POINT,
    }
)

# The record blocks are the enum's last: a code appended at its end is a record code.
RECORD_CODES: frozenset[ReasonCode] = frozenset(list(ReasonCode)[list(ReasonCode).index(ReasonCode.INVALID_RECORD) :])
