"""``metalyard-agent`` / ``python -m metalyard.agent``: the agent for people at a console."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from metalyard.agent.facts import DEFAULT_TIMEOUT, LinuxSource, collect


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="metalyard-agent", description="The metalyard agent on this server."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    facts = commands.add_parser("facts", help="print what this machine is, as JSON")
    facts.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        help="seconds each probing command may run (default: %(default)g)",
    )
    args = parser.parse_args(argv)

    if args.command == "facts":
        json.dump(collect(LinuxSource(timeout=args.timeout)).to_dict(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
