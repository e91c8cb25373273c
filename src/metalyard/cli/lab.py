"""`metalyard lab`: metalyard and a simulated datacenter, servers from purchase order to SPARE."""

import logging
import signal
import threading
from pathlib import Path
from typing import Annotated

import typer

SERVERS_MAX = 5000


def lab(
    servers: Annotated[
        int, typer.Option(min=1, max=SERVERS_MAX, help="Servers on the purchase order.")
    ] = 50,
    racks: Annotated[
        int | None, typer.Option(min=1, max=1000, help="Racks (default: 40 servers a rack).")
    ] = None,
    faults: Annotated[
        float,
        typer.Option(
            min=0.0,
            max=1.0,
            help="Share of servers delivered with a fault: a missing DIMM, a NIC link down, "
            "a wrong CPU, a failing disk or a serial on no packing list.",
        ),
    ] = 0.1,
    redfish: Annotated[
        bool, typer.Option(help="BMCs in sushy-tools' Redfish emulator, not the fake driver.")
    ] = False,
    fix: Annotated[
        bool,
        typer.Option(
            help="Then repair every fault and reboot the quarantined servers: they reach "
            "SPARE by themselves."
        ),
    ] = False,
    wait: Annotated[
        bool, typer.Option(help="Keep metalyard up after the summary, until Ctrl-C.")
    ] = True,
    live: Annotated[
        bool, typer.Option(help="A live view (--no-live: a line each time the census changes).")
    ] = True,
    seed: Annotated[int, typer.Option(help="Which servers get which faults.")] = 0,
    port: Annotated[int, typer.Option(min=0, max=65535, help="metalyard's port (0: any).")] = 0,
    data_dir: Annotated[
        Path | None,
        typer.Option(help="For metalyard's database and log (default: a temporary directory)."),
    ] = None,
    timeout: Annotated[
        float, typer.Option(min=1.0, help="Seconds the servers may take to settle.")
    ] = 600.0,
):
    """Run metalyard on its embedded default beside a simulated datacenter, and watch servers
    go from purchase order to SPARE.

    The lab orders the servers (a purchase request approved by a second person), racks them,
    and powers them on through their BMCs; each PXE-boots through metalyard's iPXE endpoint
    and runs the real agent on simulated hardware. Evaluation quarantines the faulty ones
    with their reasons and powers the rest off as SPARE.
    """
    from rich.console import Console
    from rich.live import Live

    from metalyard.lab import view
    from metalyard.lab.runner import Lab, Options

    console = Console()
    options = Options(
        servers=servers,
        racks=racks,
        fault_rate=faults,
        redfish=redfish,
        seed=seed,
        data_dir=data_dir,
        port=port,
        timeout=timeout,
    )
    signal.signal(signal.SIGTERM, _interrupted)  # stop metalyard and the BMCs as Ctrl-C does
    running = Lab(options)
    # The agents' and the datacenter's own words go to a file: the screen is the view's.
    logging.basicConfig(filename=running.data_dir / "lab.log", level=logging.INFO, force=True)
    try:
        with console.status("starting metalyard and ordering the servers"):
            running.start()
        _copyable(console, f"metalyard serving at {running.url}; logs in {running.data_dir}")
        rounds = [("powering on", running.power_on)]
        if fix:
            rounds.append(("repaired and rebooted", running.fix))
        for title, begin in rounds:
            begin()
            if live:
                with Live(console=console, refresh_per_second=4, transient=False) as screen:
                    running.settle(lambda now, t=title: screen.update(view.census(now, t)))
            else:
                running.settle(_printing_changes(console))
            console.print(view.summary(running.summary(), url=running.url))
        _copyable(console, f"metalyard region add lab --url {running.url} --token {running.token}")
        if wait:
            console.print("metalyard stays up for you to look around; Ctrl-C ends the lab")
            threading.Event().wait()
    except KeyboardInterrupt:
        console.print("stopping the lab")
    finally:
        running.stop()


def _copyable(console, line: str) -> None:
    """A line to copy from (a command, a URL, a path): outside any box and never wrapped, so
    a copy takes it whole."""
    console.print(line, soft_wrap=True, markup=False, highlight=False)


def _interrupted(_signum, _frame) -> None:
    raise KeyboardInterrupt


def _printing_changes(console):
    """A census printer that stays quiet while nothing moves."""
    from metalyard.lab import view

    last = [None]

    def show(census) -> None:
        if (census.settled, census.states) != last[0]:
            last[0] = (census.settled, census.states)
            console.print(view.line(census))

    return show
