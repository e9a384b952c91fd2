"""`python -m bench [benchmark] [options]`: run a benchmark (default: all of them, with their defaults).

python -m bench                      # every benchmark but the on-request ones (event_latency)
python -m bench backfill --help      # one benchmark's options
python -m bench backfill --practices 3 --patients 2000 --store postgres
"""

from __future__ import annotations

import argparse
import importlib
import sys

import bench  # noqa: F401 - puts the repository and plugins/ on sys.path

# name -> module (with add_arguments(parser) and run(args) -> int). Add new benchmarks here.
BENCHMARKS = {
    "backfill": "bench.backfill",
    "refresh": "bench.refresh",
    "smart_list": "bench.smart_list",
    "media_import": "bench.media_import",
    "event_latency": "bench.event_latency",
    "scale": "bench.scale",
    "record_lookup": "bench.record_lookup",
    "idle_cost": "bench.idle_cost",
}
# Run only when named: they start the whole scheduler stack (PostgreSQL and Redis needed, about 15 minutes).
# record_lookup loads 10 million rows into a throwaway PostgreSQL database (a few minutes).
# idle_cost runs 1,000 practices' watchers for minutes (about 10 minutes in all); scale starts a stack per
# practice count (30 practices: about 10 minutes; 1,000: about an hour).
ON_REQUEST = {"event_latency", "record_lookup", "idle_cost", "scale"}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="benchmark", metavar="benchmark")
    modules = {}
    for name, module_name in BENCHMARKS.items():
        module = importlib.import_module(module_name)
        modules[name] = module
        sub = commands.add_parser(name, help=(module.__doc__ or name).splitlines()[0])
        module.add_arguments(sub)
    if not argv or argv[0] not in BENCHMARKS and argv[0] not in ("-h", "--help"):
        # No benchmark named: run them all with their defaults (plus any shared flags given).
        status = 0
        for name in [n for n in BENCHMARKS if n not in ON_REQUEST]:
            status |= modules[name].run(parser.parse_args([name, *argv]))
        return status
    args = parser.parse_args(argv)
    return modules[args.benchmark].run(args)


if __name__ == "__main__":
    sys.exit(main())
