"""The HTML report as a phone browser shows it: headless Chromium screenshots, kept under test-artifacts/.

Uses Debian's `chromium` binary directly. Without it the test skips with the reason, except under CI=true,
where it fails (a CI run must look at the report).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cherry_sync.reports.run import RENDERED, run_practice_report
from cherry_sync.reports.window import resolve_window
from scripts.local_env import REPO

pytestmark = pytest.mark.browser

ARTIFACTS = REPO / "test-artifacts"
PHONE = (420, 1600)


def _chromium() -> str:
    path = shutil.which("chromium")
    if path:
        return path
    reason = "chromium is not installed (Debian: apt-get install -y chromium)"
    if os.environ.get("CI", "").strip().lower() in ("true", "1", "yes"):
        pytest.fail(f"{reason}; CI=true: the browser test must run, not skip", pytrace=False)
    pytest.skip(reason)


def _screenshot(html: Path, png: Path, profile: Path, size: tuple[int, int] = PHONE) -> Image.Image:
    command = [
        _chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        f"--window-size={size[0]},{size[1]}",
        f"--screenshot={png}",
        html.as_uri(),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and png.exists(), result.stderr[-3000:]
    return Image.open(png).convert("RGB")


def _render(env, index: int, folder: Path) -> Path:
    practice = env.practices[index]
    window = resolve_window(practice.timezone, reference=datetime.now(UTC), end_date=env.last_full_day(index))
    outcome = run_practice_report(practice, env.store, env.hook(index), window, send=False, output_dir=folder)
    assert outcome.outcome == RENDERED
    return Path(outcome.files[0])


def test_report_screenshots_on_a_phone(report_env_sqlite, tmp_path):
    _chromium()  # skip (or fail under CI) before any work
    env = report_env_sqlite
    env.practice(0)
    env.load_store(0)
    env.practice(1)
    env.load_store(1)
    ARTIFACTS.mkdir(exist_ok=True)

    html = _render(env, 0, ARTIFACTS / "metrics_email")
    shot = _screenshot(html, ARTIFACTS / "metrics_email_phone.png", tmp_path / "profile")

    assert shot.size == PHONE
    top = shot.crop((0, 0, PHONE[0], 700))
    # Not a blank page: the header, the headline tiles and the chart's bars (its magenta) are drawn.
    assert len(top.getcolors(maxcolors=1 << 16) or []) > 50
    pixels = np.asarray(top).reshape(-1, 3).astype(int)
    magenta = (pixels[:, 0] > 150) & (pixels[:, 1] < 80) & (pixels[:, 2] > 60)
    assert magenta.sum() > 500, "the chart's bars are not visible"

    env.cherry.set_faults(server_error_share=1.0, path_prefixes=["/v1/reports/metrics"])
    degraded = _render(env, 1, ARTIFACTS / "metrics_email")
    shot = _screenshot(degraded, ARTIFACTS / "metrics_email_phone_metrics_unavailable.png", tmp_path / "profile")
    assert shot.size == PHONE
    # The amber notice that says which figures are missing is drawn near the top.
    notice = np.asarray(shot.crop((0, 0, PHONE[0], 500))).reshape(-1, 3).astype(int)
    amber = (notice[:, 0] > 240) & (notice[:, 1] >= 230) & (notice[:, 1] <= 250) & (notice[:, 2] < 235)
    assert amber.sum() > 2000, "the 'figures unavailable' notice is not visible"
