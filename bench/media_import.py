"""Media import: a 200-asset import of Cherry marketing assets into a CRM location's media library.

    python -m bench media_import [--assets 200] [--asset-kb 400] [--window 10] [--latency-ms 0] [--store sqlite]
                                 [--max-in-flight 8] [--prefetch 2]

Both sandboxes run as one subprocess on loopback (`python -m sandbox`), so the client's time is its own. The
Cherry library is brought to `--assets` assets (the 120 seeded ones plus new ones), every one given real-looking
content of about `--asset-kb` KB (0.5x to 1.5x, PNG / JPEG / PDF), so bytes per second mean something (the
seeded files are ~2 KB). The import runs through the real engine (`MediaImporter`: listing, streamed capped
downloads, sha256 and type checks, folder set-up, uploads, ledger) into an empty location, twice: as it runs in
production (uploads through the write window, up to `--max-in-flight` at once, default 8, the window sized from
the observed round trip; downloads `--prefetch` ahead of them, default 2) and strictly one after the other (one
upload in flight, prefetch 0: how the import ran before the window), each into its own practice and location.
Then the first practice is re-run with nothing changed.

Limits: `--window 10` (default) is the real thing: the CRM sandbox allows 100 requests per 10 s per location and
the hook paces at 95 (HighLevel's 100 per 10 s); Cherry allows 20 per second per key and the hook paces at 18.
`--window 1` time-scales the CRM only (Cherry keeps its real limit). `--latency-ms` and `--cherry-latency-ms`
add latency to every CRM / Cherry request (loopback answers in milliseconds; HighLevel in roughly 100-300 ms, and
an upload of a few hundred KB takes longer).

Measured: wall time and bytes uploaded per second (first import, client side); the share of the CRM's burst
limit used (CRM requests the sandbox counted per second of the import, over the limit's `--burst` per `--window`:
100% is the location's whole allowance; the hook paces at 95%. The limit is a sliding window, so a full burst
goes through at the start of a run: a run only two windows long can show a few points over 100%) and the most
requests the sandbox saw in one window; the peak of uploads in flight (the client's window) and of the location's
requests being answered at once (the sandbox's count); the most assets held in memory at once; Cherry and CRM
calls per asset (from the hooks' counters; the CRM's also from the sandbox's own), CRM writes per asset, 429s,
and for the unchanged re-run its CRM calls (target 0) and Cherry calls.
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import os
import random
import secrets
import struct
import tempfile
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests

from bench import RESULTS
from bench.results import machine, publish

SECTION = "Media import"
PG_ADMIN_URL = os.environ.get("CHERRY_SYNC_BENCH_PG", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")
UPLOAD = "POST /medias/upload-file"
DOWNLOAD = "GET /v1/marketing-assets/{id}/content"
KINDS = (("image/png", "png"), ("image/jpeg", "jpg"), ("application/pdf", "pdf"))
CATEGORIES = ("Seasonal", "Holiday", "Promotions", "Social", "Email")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--assets", type=int, default=200, help="assets in the Cherry library (>= 120), default 200")
    parser.add_argument("--asset-kb", type=int, default=400, help="mean asset size in KB, default 400")
    parser.add_argument("--window", type=float, default=10.0, help="CRM burst window in seconds (10 = real limits)")
    parser.add_argument("--burst", type=int, default=100, help="CRM requests per window per location (100)")
    parser.add_argument("--pace", type=int, default=95, help="CRM hook pacing: requests per window (95)")
    parser.add_argument("--latency-ms", type=int, default=0, help="added to every CRM request")
    parser.add_argument("--cherry-latency-ms", type=int, default=0, help="added to every Cherry request")
    parser.add_argument("--prefetch", type=int, default=2, help="downloads running ahead of uploads (default 2)")
    parser.add_argument(
        "--max-in-flight", type=int, default=None, help="uploads in flight at most (default: the connection's, 8)"
    )
    parser.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite", help="store backend")
    parser.add_argument("--seed", type=int, default=7, help="content seed, default 7")
    parser.add_argument("--results", type=Path, default=RESULTS, help="results file (bench/RESULTS.md)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave the results file alone")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench media_import", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


# -- content --------------------------------------------------------------------------------------------


def _png(size: int, rng: random.Random) -> bytes:
    """A valid PNG of about `size` bytes: random pixels, stored (zlib level 0) so the size is predictable."""
    side = max(8, int((size / 3) ** 0.5))
    raw = b"".join(b"\x00" + rng.randbytes(side * 3) for _ in range(side))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw, 0)) + chunk(b"IEND", b"")


def _content(ctype: str, size: int, rng: random.Random) -> bytes:
    if ctype == "image/png":
        return _png(size, rng)
    if ctype == "image/jpeg":
        return b"\xff\xd8\xff\xe0" + rng.randbytes(max(0, size - 6)) + b"\xff\xd9"
    return b"%PDF-1.4\n%" + rng.randbytes(max(0, size - 20)) + b"\n%%EOF\n"


def prepare_library(cherry_url: str, api_key: str, args: argparse.Namespace) -> dict[str, int]:
    """Give every seeded asset real-sized content and add new ones up to `--assets`; returns totals."""
    rng = random.Random(args.seed)
    admin = f"{cherry_url}/_sandbox"
    http = requests.Session()
    seeded = _list_assets(http, cherry_url, api_key)
    total_bytes = 0
    for asset in seeded:
        size = int(args.asset_kb * 1024 * rng.uniform(0.5, 1.5))
        body = {
            "content_type": asset["content_type"],
            "content_base64": _b64(_content(asset["content_type"], size, rng)),
        }
        http.put(f"{admin}/assets/{asset['id']}/content", json=body, timeout=60).raise_for_status()
        total_bytes += size
    for n in range(max(0, args.assets - len(seeded))):
        ctype, ext = KINDS[n % len(KINDS)]
        size = int(args.asset_kb * 1024 * rng.uniform(0.5, 1.5))
        body = {
            "category": CATEGORIES[n % len(CATEGORIES)],
            "name": f"Bench Asset {n:03d}.{ext}",
            "content_type": ctype,
            "content_base64": _b64(_content(ctype, size, rng)),
        }
        http.post(f"{admin}/assets", json=body, timeout=60).raise_for_status()
    listed = _list_assets(http, cherry_url, api_key)
    return {"assets": len(listed), "bytes": sum(a["size"] for a in listed)}


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _list_assets(http: requests.Session, cherry_url: str, key: str) -> list[dict]:
    rows, cursor = [], None
    while True:
        params = {"limit": 500, **({"cursor": cursor} if cursor else {})}
        body = http.get(
            f"{cherry_url}/v1/marketing-assets", params=params, headers={"Authorization": f"Bearer {key}"}, timeout=60
        ).json()
        rows += body["data"]
        if not body["has_more"]:
            return rows
        cursor = body["next_cursor"]


# -- the store ------------------------------------------------------------------------------------------


@contextmanager
def bench_store(kind: str, workdir: Path) -> Iterator[tuple[str, str]]:
    """(store URL, label): a SQLite file, or a throwaway PostgreSQL database dropped afterwards."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url
    from sqlalchemy.pool import NullPool

    if kind == "sqlite":
        yield f"sqlite:///{workdir / 'store.db'}", "SQLite"
        return
    name = f"cherry_sync_bench_{secrets.token_hex(4)}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False), "PostgreSQL"
    finally:
        from cherry_sync.store.engine import dispose_engine

        dispose_engine(make_url(PG_ADMIN_URL).set(database=name))
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


# -- one import -----------------------------------------------------------------------------------------


def _hooks(sb_info: dict, index: int, args: argparse.Namespace, pacer, max_in_flight: int | None) -> tuple[Any, Any]:
    from airflow.sdk import Connection

    from cherry_sync.hooks.cherry import CherryHook
    from cherry_sync.hooks.crm import AesthetixCrmHook

    practice = sb_info["cherry"]["practices"][index]
    loc = sb_info["crm"]["locations"][index]
    cherry = CherryHook(
        f"cherry_bench_{index}",
        connection=Connection(
            conn_id=f"cherry_bench_{index}",
            conn_type="http",
            host=sb_info["cherry"]["base_url"],
            password=practice["api_key"],
        ),
        pacer=pacer,
    )
    crm = AesthetixCrmHook(
        f"crm_bench_{index}",
        connection=Connection(
            conn_id=f"crm_bench_{index}",
            conn_type="http",
            host=sb_info["crm"]["base_url"],
            password=loc["token"],
            extra=json.dumps(
                {
                    "location_id": loc["id"],
                    "burst_limit": args.pace,
                    "burst_window_seconds": args.window,
                    **({"max_in_flight": max_in_flight} if max_in_flight else {}),
                }
            ),
        ),
        pacer=pacer,
    )
    return cherry, crm


def import_once(
    sb_info: dict, store, index: int, args: argparse.Namespace, prefetch: int, max_in_flight: int | None, pacer
) -> dict:
    from cherry_sync.media.importer import ImportSettings, MediaImporter
    from cherry_sync.media.sources import CherryAssetSource

    cherry, crm = _hooks(sb_info, index, args, pacer, max_in_flight)
    importer = MediaImporter(
        slug=f"bench-{index}",
        store=store,
        crm=crm,
        sources=[CherryAssetSource(cherry)],
        settings=ImportSettings(prefetch=prefetch),
    )
    wall, cpu = time.perf_counter(), time.process_time()
    summary = importer.run()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {
        "summary": summary,
        "wall": wall,
        "cpu": cpu,
        "cherry_calls": cherry.api_calls,
        "crm_calls": crm.api_calls,
        "crm_calls_by_op": dict(crm.calls),
        "location": sb_info["crm"]["locations"][index]["id"],
    }


def _crm_stats(crm_url: str) -> dict:
    return requests.get(f"{crm_url}/_sandbox/stats", timeout=10).json()


def _reset_crm_stats(crm_url: str, window: float) -> None:
    requests.post(f"{crm_url}/_sandbox/stats/reset", params={"window_seconds": window}, timeout=10).raise_for_status()


def run(args: argparse.Namespace) -> int:
    logging.disable(logging.WARNING)  # the importer logs every upload; the report says what happened
    from cherry_sync.hooks.pacing import MemoryPacer
    from cherry_sync.registry import PracticeConfig
    from cherry_sync.store import SyncStore, engine_from_url, migrate
    from scripts.local_env import start_sandboxes

    if args.assets < 120:
        raise SystemExit("--assets: the Cherry sandbox library starts with 120 assets")
    with (
        tempfile.TemporaryDirectory(prefix="cherry-media-bench-") as tmp,
        bench_store(args.store, Path(tmp)) as (
            store_url,
            store_label,
        ),
    ):
        sb = start_sandboxes(
            Path(tmp) / "sandboxes", practices=2, patients=5, crm_burst=args.burst, crm_window=args.window
        )
        try:
            info = sb.info
            print(f"preparing {args.assets} assets of ~{args.asset_kb} KB...", flush=True)
            library = prepare_library(sb.cherry_url, info["cherry"]["practices"][0]["api_key"], args)
            if args.latency_ms:
                requests.put(f"{sb.crm_url}/_sandbox/faults", json={"latency_ms": args.latency_ms}, timeout=10)
            if args.cherry_latency_ms:
                requests.put(
                    f"{sb.cherry_url}/_sandbox/faults", json={"latency_ms": args.cherry_latency_ms}, timeout=10
                ).raise_for_status()
            engine = engine_from_url(store_url)
            migrate(engine)
            store = SyncStore(engine)
            for index in (0, 1):
                store.sync_practices(
                    [
                        PracticeConfig.model_validate(
                            {
                                "slug": f"bench-{index}",
                                "display_name": f"Bench {index}",
                                "timezone": "America/New_York",
                                "cherry_conn_id": f"cherry_bench_{index}",
                                "crm_conn_id": f"crm_bench_{index}",
                            }
                        )
                    ]
                )
            pacer = MemoryPacer()
            runs = {}
            for label, index, prefetch, in_flight in (
                ("window", 0, args.prefetch, args.max_in_flight),
                ("sequential", 1, 0, 1),
            ):
                print(f"importing ({label}, prefetch {prefetch})...", flush=True)
                _reset_crm_stats(sb.crm_url, args.window)
                result = import_once(info, store, index, args, prefetch, in_flight, pacer)
                result["stats"] = _crm_stats(sb.crm_url)["by_key"].get(result["location"], {})
                runs[label] = result
            print("re-running unchanged...", flush=True)
            _reset_crm_stats(sb.crm_url, args.window)
            rerun = import_once(info, store, 0, args, args.prefetch, args.max_in_flight, pacer)
            rerun["stats"] = _crm_stats(sb.crm_url)["by_key"].get(rerun["location"], {})
        finally:
            sb.stop()
    report = render(args, store_label, library, runs, rerun)
    return publish(args, SECTION, _SECTION_INTRO, report)


# -- reporting ------------------------------------------------------------------------------------------


def _subsection_title(args: argparse.Namespace, store_label: str) -> str:
    limits = "real limits" if args.window >= 10 else f"CRM time-scaled {args.burst}/{args.window:g} s"
    latency = f", +{args.latency_ms} ms CRM latency" if args.latency_ms else ""
    if args.cherry_latency_ms:
        latency += f", +{args.cherry_latency_ms} ms Cherry latency"
    return f"{args.assets} assets of ~{args.asset_kb} KB, {store_label} store, {limits}{latency}"


def _mb(n: float) -> str:
    return f"{n / (1024 * 1024):.2f} MB"


def burst_share(args: argparse.Namespace, r: dict) -> float:
    """CRM requests per second over the import, as a share of what the location allows (burst per window)."""
    return r["stats"].get("requests", 0) / r["wall"] / (args.burst / args.window)


def _row(label: str, r: dict, assets: int, args: argparse.Namespace) -> str:
    s = r["summary"]
    stats = r["stats"]
    crm_sandbox = stats.get("requests", 0)
    writes = sum(n for ep, n in stats.get("endpoints", {}).items() if ep.split()[0] in ("POST", "PUT", "DELETE"))
    setup = r["crm_calls"] - r["crm_calls_by_op"].get(UPLOAD, 0)
    return (
        f"| {label} | {s.uploaded} | {r['wall']:.1f} s | {_mb(s.bytes_uploaded)} | "
        f"**{_mb(s.bytes_uploaded / r['wall'])}/s** ({s.uploaded / r['wall']:.1f} assets/s) | "
        f"**{burst_share(args, r):.0%}** | {stats.get('max_in_window', 0)} | "
        f"{s.peak_in_flight} / {stats.get('max_concurrent', 0)} | {s.peak_held} | "
        f"{r['cherry_calls'] / assets:.3f} | {r['crm_calls'] / assets:.3f} ({setup} folder set-up) | "
        f"{crm_sandbox} | {writes / assets:.3f} | {stats.get('status_codes', {}).get('429', 0)} | {r['cpu']:.1f} s |"
    )


def _bound(args: argparse.Namespace, r: dict) -> str:
    rate = r["summary"].uploaded / r["wall"]
    crm_cap = args.pace / args.window
    if burst_share(args, r) >= 0.85:
        return (
            f"the CRM's limit ({args.burst} per {args.window:g} s per location, paced at {args.pace}): "
            f"{crm_cap:.1f} uploads per second at most, whatever the bandwidth."
        )
    if rate >= 0.85 * 18:
        return "Cherry's 20 requests per second per key (paced at 18) for the downloads."
    return (
        f"latency: {r['summary'].peak_in_flight} upload(s) in flight at most ({rate:.1f} per second against the "
        f"CRM's {crm_cap:.1f}); practices run in parallel (mapped tasks), each on its own location's limit."
    )


def render(args, store_label: str, library: dict, runs: dict, rerun: dict) -> str:
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    assets = library["assets"]
    first = runs["window"]
    rs = rerun["summary"]
    lines = [
        f"### {_subsection_title(args, store_label)}",
        "",
        f"Run {now} on {machine()}.",
        f"`python -m bench media_import --assets {args.assets} --asset-kb {args.asset_kb} --window {args.window:g} "
        f"--burst {args.burst} --pace {args.pace} --prefetch {args.prefetch}"
        f"{f' --max-in-flight {args.max_in_flight}' if args.max_in_flight else ''} --store {args.store}"
        f"{f' --latency-ms {args.latency_ms}' if args.latency_ms else ''}"
        f"{f' --cherry-latency-ms {args.cherry_latency_ms}' if args.cherry_latency_ms else ''}`: library {assets} assets, "
        f"{_mb(library['bytes'])}; CRM limit {args.burst} per {args.window:g} s per location (hook paced at "
        f"{args.pace}), Cherry 20 per s per key (hook paced at 18); sandboxes in a subprocess.",
        "",
        "| import into an empty location | uploaded | wall | bytes uploaded | **bytes per second** | **burst limit "
        "used** | max CRM requests in a window | peak uploads in flight / requests answered at once | peak assets "
        "held | Cherry calls per asset | CRM calls per asset | CRM requests (sandbox count) | CRM writes per asset | "
        "429s | client CPU |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        _row(
            f"write window (up to {args.max_in_flight or 8} in flight), downloads {args.prefetch} ahead",
            first,
            assets,
            args,
        ),
        _row("download, then upload, one by one", runs["sequential"], assets, args),
        "",
        f"Unchanged re-run: {rs.unchanged} unchanged, {rs.uploaded} uploaded, "
        f"**{rerun['stats'].get('requests', 0)} CRM requests**, {rerun['cherry_calls']} Cherry call(s) "
        f"(the listing), {rerun['wall']:.2f} s.",
        "",
        f"Calls per asset: each asset costs one Cherry download and one CRM upload; the Cherry listing "
        f"({first['summary'].api_calls.get('cherry GET /v1/marketing-assets', 0)} call(s) for {assets} assets) and "
        f"the one-time folder set-up (list root, create `Cherry`, list it, create {len(CATEGORIES)} category "
        "folders) come on top. What bounds the rate: " + _bound(args, first),
    ]
    return "\n".join(lines)


_SECTION_INTRO = (__doc__ or "").split("\n\n", 2)[2].strip()


if __name__ == "__main__":
    import sys

    sys.exit(main())
