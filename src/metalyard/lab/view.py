"""What the terminal shows of a lab run: a live census while the servers settle, then a
summary that says how the outcome matches the faults the lab injected."""

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from metalyard.lab.runner import Census, Summary

STATE_STYLES = {
    "not booted": "dim",
    "DISCOVERED": "cyan",
    "EVALUATING": "yellow",
    "QUARANTINED": "red",
    "SPARE": "green",
}


def census(census: Census, title: str) -> RenderableType:
    states = Table.grid(padding=(0, 2))
    for state, style in STATE_STYLES.items():
        states.add_row(Text(state, style=style), str(census.states.get(state, 0)))
    for state, count in sorted(census.states.items()):
        if state not in STATE_STYLES:
            states.add_row(state, str(count))
    bar = Table.grid(padding=(0, 1))
    bar.add_row(
        ProgressBar(total=census.total, completed=census.settled, width=40),
        f"{census.settled}/{census.total} settled",
        f"{census.elapsed:5.1f} s",
    )
    problems = Table.grid(padding=(0, 2))
    for problem in census.problems:
        problems.add_row(Text(problem.serial, style="bold"), Text(problem.message, style="red"))
    parts: list[RenderableType] = [states, Text(""), bar]
    if census.problems:
        parts += [Text(""), Text("latest problems", style="bold"), problems]
    return Panel(Group(*parts), title=title, expand=False)


def line(census: Census) -> str:
    """The census in one line, for logs and terminals without a live view."""
    states = ", ".join(f"{state} {count}" for state, count in sorted(census.states.items()))
    return f"{census.elapsed:6.1f} s  {census.settled}/{census.total} settled  {states}"


def summary(summary: Summary, *, url: str) -> RenderableType:
    lines = Table.grid(padding=(0, 2))
    lines.add_row("SPARE", Text(str(summary.spare), style="green"))
    lines.add_row("QUARANTINED", Text(str(summary.quarantined), style="red"))
    for state, count in sorted(summary.states.items()):
        if state not in ("SPARE", "QUARANTINED"):
            lines.add_row(state, str(count))
    lines.add_row("unknown assets", ", ".join(summary.unknown_assets) or "none")
    lines.add_row(f"order {summary.order}", summary.order_state)
    lines.add_row("elapsed", f"{summary.elapsed:.1f} s")
    if summary.seconds_to_spare:
        lines.add_row(
            "power-on to SPARE",
            f"p50 {summary.percentile(0.5):.1f} s, p99 {summary.percentile(0.99):.1f} s, "
            f"{summary.servers_per_second:.1f} servers/s",
        )
    why = Table("fault injected", "servers", "quarantined for it", "metalyard's reason")
    for fault, serials in summary.by_fault().items():
        caught = summary.caught(fault)
        example = summary.reasons[caught[0]][0].split(" (fix: ")[0] if caught else ""
        style = "green" if len(caught) == len(serials) else "red"
        why.add_row(fault.value, str(len(serials)), Text(str(len(caught)), style=style), example)
    parts: list[RenderableType] = [lines]
    if summary.injected:
        parts += [Text(""), why]
    parts += [
        Text(""),
        Text.assemble("API ", (url, "bold"), " (docs at ", (f"{url}/docs", "bold"), ")"),
    ]
    return Panel(Group(*parts), title="the lab", expand=False)
