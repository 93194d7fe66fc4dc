"""Write or check the Grafana dashboards: ``python -m tracker.monitoring [--out DIR] [--check]``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from tracker.monitoring.dashboards import stale_dashboards, write_dashboards

DEFAULT_OUT = Path("deploy/grafana/dashboards")


def main(argv: Sequence[str] | None = None) -> int:
    """Write the dashboards, or with ``--check`` exit 1 if the committed ones are stale."""
    parser = argparse.ArgumentParser(prog="python -m tracker.monitoring", description=main.__doc__)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="directory of the dashboard JSON files")
    parser.add_argument("--check", action="store_true", help="fail if the files differ from the generator")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_dashboards(args.out)
        for name in stale:
            print(f"{args.out / name} is stale: run `python -m tracker.monitoring`", file=sys.stderr)
        return 1 if stale else 0
    for path in write_dashboards(args.out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
