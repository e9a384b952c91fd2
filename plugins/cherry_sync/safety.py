"""Keep patient data out of logs, exceptions and XCom.

APIs sometimes echo what they were sent in their error messages; `redact` strips anything that looks
like an email address, a phone number or a date before such a message is logged or raised.
"""

from __future__ import annotations

import re

_PATTERNS = (
    re.compile(r"[^\s@\"'<>(),;:]+@[^\s@\"'<>(),;:]+"),  # email-ish
    re.compile(r"\b\d{4}[-/]\d{1,2}[-/]\d{1,2}\b|\b\d{1,2}[-/]\d{1,2}[-/]\d{2,4}\b"),  # dates
    # phone-ish: 8+ digits with separators, not part of a longer token (opaque ids like pat_0993ab stay)
    re.compile(r"(?<![\w])\+?\(?\d[\d\s().-]{6,}\d(?![\w])"),
    re.compile(r"\$\s?\d[\d,]*(\.\d+)?"),  # money amounts
)


def redact(text: str | None) -> str:
    """Replace email addresses, phone numbers, dates and amounts with `[redacted]`."""
    if not text:
        return ""
    for pattern in _PATTERNS:
        text = pattern.sub("[redacted]", text)
    return text
