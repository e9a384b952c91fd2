# ruff: noqa: S104 - the point of these tests is the all-interfaces address
"""Sandboxes bind loopback only, unless a container opts in to all interfaces explicitly."""

from __future__ import annotations

import pytest

from sandbox.common.server import ALL_INTERFACES_ENV, _bind


def test_non_loopback_address_is_refused_by_default(monkeypatch):
    monkeypatch.delenv(ALL_INTERFACES_ENV, raising=False)
    with pytest.raises(ValueError, match="loopback only"):
        _bind("0.0.0.0", 0)


def test_container_opt_in_allows_all_interfaces(monkeypatch):
    monkeypatch.setenv(ALL_INTERFACES_ENV, "1")
    sock = _bind("0.0.0.0", 0)
    try:
        assert sock.getsockname()[0] == "0.0.0.0"
    finally:
        sock.close()
    with pytest.raises(ValueError):
        _bind("10.1.2.3", 0)  # only the wildcard addresses, never a specific outside address
