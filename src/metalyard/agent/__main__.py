"""``metalyard-agent`` / ``python -m metalyard.agent``: the agent for people at a console."""

from __future__ import annotations

import argparse
import ipaddress
import json
import logging
import shlex
import signal
import socket
import sys
import threading
import urllib.parse
from collections.abc import Callable, Sequence

from metalyard.agent.facts import DEFAULT_TIMEOUT, LinuxSource, collect

CMDLINE = "/proc/cmdline"
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def kernel_arguments(text: str) -> dict[str, str]:
    """``key=value`` pairs of a kernel command line (iPXE passes ``metalyard.url=…``)."""
    try:
        words = shlex.split(text)
    except ValueError:  # an unbalanced quote: the kernel does not care, nor do we
        words = text.split()
    return dict(word.split("=", 1) for word in words if "=" in word)


def _read_cmdline(path: str = CMDLINE) -> dict[str, str]:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return kernel_arguments(f.read())
    except OSError:
        return {}


def metalyard_addresses(url: str) -> list[str]:
    """The addresses ``url``'s host resolves to, as the default networks commands come from."""
    host = urllib.parse.urlsplit(url).hostname or ""
    try:
        return [str(ipaddress.ip_address(host))]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError:
        return []
    return sorted({str(info[4][0]).split("%", 1)[0] for info in infos})


def _dry_run(what: str) -> Callable[[], None]:
    def act() -> None:
        print(f"dry run: would {what}", file=sys.stderr, flush=True)

    return act


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="metalyard-agent", description="The metalyard agent on this server."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    facts = commands.add_parser("facts", help="print what this machine is, as JSON")
    run = commands.add_parser(
        "run",
        help="introduce this server to metalyard and do what it says",
        description="Report this server to metalyard, show its status on the console, and "
        "take commands from metalyard on the command port.",
    )
    run.add_argument(
        "--url",
        help=f"metalyard's base URL (default: metalyard.url= in {CMDLINE}, as iPXE passes it)",
    )
    run.add_argument("--port", type=int, default=9100, help="command port (default: %(default)s)")
    run.add_argument(
        "--bind", default="0.0.0.0", help="command port address, :: for IPv6 (default: %(default)s)"
    )
    run.add_argument(
        "--allow",
        action="append",
        metavar="CIDR",
        help="network metalyard's commands may come from, repeatable (default: metalyard.allow= "
        f"in {CMDLINE}, comma-separated, else the addresses of the --url host)",
    )
    run.add_argument(
        "--poll",
        type=float,
        default=10.0,
        metavar="S",
        help="seconds between questions to metalyard (default: %(default)g)",
    )
    run.add_argument(
        "--recollect",
        type=float,
        default=600.0,
        metavar="S",
        help="seconds between fact collections; changes are reported (default: %(default)g)",
    )
    run.add_argument(
        "--dry-run", action="store_true", help="print power actions instead of doing them"
    )
    run.add_argument(
        "--log",
        metavar="FILE",
        help="write the agent's log here (default: stderr, unless stdout is a terminal: "
        "the status screen shows what matters and a log would scribble over it)",
    )
    for sub in (facts, run):
        sub.add_argument(
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
    return _run(parser, args)


def _run(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    # Imported here so that `facts` stays as light as it was.
    from metalyard.agent.console import ConsoleWriter
    from metalyard.agent.runtime import Agent, system_power_off, system_reboot
    from metalyard.agent.server import parse_networks

    cmdline = _read_cmdline()
    url = args.url or cmdline.get("metalyard.url")
    if not url:
        parser.error(f"--url is required when {CMDLINE} has no metalyard.url=")
    allowed = args.allow
    if not allowed and cmdline.get("metalyard.allow"):
        allowed = [c for c in cmdline["metalyard.allow"].split(",") if c]
    if not allowed:
        allowed = metalyard_addresses(url)
    try:
        parse_networks(allowed)
    except ValueError as exc:
        parser.error(str(exc))
    if not allowed:
        print("warning: no network to take commands from; all will be refused", file=sys.stderr)

    agent = Agent(
        url,
        LinuxSource(timeout=args.timeout),
        port=args.port,
        bind=args.bind,
        allowed_networks=allowed,
        poll_seconds=args.poll,
        recollect_seconds=args.recollect,
        power_off=_dry_run("power off") if args.dry_run else system_power_off,
        reboot=_dry_run("reboot") if args.dry_run else system_reboot,
        display=ConsoleWriter(sys.stdout).show,
    )
    if args.log:
        logging.basicConfig(filename=args.log, level=logging.INFO, format=LOG_FORMAT)
    elif sys.stdout.isatty():
        logging.getLogger("metalyard.agent").addHandler(logging.NullHandler())
        logging.getLogger("metalyard.agent").propagate = False
    else:
        logging.basicConfig(stream=sys.stderr, level=logging.INFO, format=LOG_FORMAT)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        agent.run_forever(stop)
    except KeyboardInterrupt:
        stop.set()
    except OSError as exc:  # the command port is taken or not allowed
        print(f"metalyard-agent: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
