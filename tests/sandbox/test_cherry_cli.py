"""The command line: flags -> config (also with a prefix, for a combined launcher), and the banner."""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import requests

from sandbox.cherry.app import create_app
from sandbox.cherry.cli import add_arguments, config_from_args, describe, main

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_match_the_contract():
    config = config_from_args(add_arguments(argparse.ArgumentParser()).parse_args([]))
    assert (config.seed, config.practices, config.patients_per_practice) == (7, 3, 200)
    assert config.rate_limits.burst_limit == 20 and config.rate_limits.burst_window_seconds == 1.0
    assert config.rate_limits.daily_limit == 100_000 and config.rate_limits.enabled
    assert config.malformed_share == 0


def test_prefixed_flags_for_a_combined_launcher():
    parser = add_arguments(argparse.ArgumentParser(), prefix="cherry-")
    args = parser.parse_args(
        [
            "--cherry-seed",
            "11",
            "--cherry-practices",
            "2",
            "--cherry-patients",
            "9",
            "--cherry-malformed-share",
            "0.1",
            "--cherry-rate-limit",
            "5",
            "--cherry-no-rate-limit",
            "--cherry-now",
            "2026-01-15T00:00:00Z",
        ]
    )
    config = config_from_args(args, prefix="cherry-")
    assert (config.seed, config.practices, config.patients_per_practice) == (11, 2, 9)
    assert config.malformed_share == 0.1 and config.rate_limits.burst_limit == 5
    assert not config.rate_limits.enabled
    assert config.now.isoformat() == "2026-01-15T00:00:00+00:00"


def test_banner_lists_practices_and_keys():
    config = config_from_args(add_arguments(argparse.ArgumentParser()).parse_args(["--patients", "3"]))
    app = create_app(config)
    banner = describe(app, "http://127.0.0.1:8300")
    for book in app.state.cherry.books.values():
        assert book.practice.id in banner and book.practice.timezone in banner
    assert banner.count("ck_sandbox_") == 3
    assert "@" not in banner  # no patient data


def test_refuses_a_non_loopback_host(capsys):
    assert main(["--host", "0.0.0.0", "--patients", "1"]) == 2  # noqa: S104 - that is the point
    assert "loopback" in capsys.readouterr().err


def test_module_entry_point_serves():
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "sandbox.cherry", "--port", str(port), "--patients", "5", "--practices", "1"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        banner = process.stdout.readline()
        assert f"http://127.0.0.1:{port}" in banner
        key = process.stdout.readline().split("key: ")[1].strip()
        deadline = time.monotonic() + 15
        while True:
            try:
                response = requests.get(
                    f"http://127.0.0.1:{port}/v1/practice", headers={"Authorization": f"Bearer {key}"}, timeout=2
                )
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline, "sandbox did not start"
                time.sleep(0.05)
        assert response.status_code == 200
    finally:
        process.terminate()
        process.wait(timeout=10)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
