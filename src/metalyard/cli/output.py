"""How results are printed: a Rich table for people, JSON or YAML (the API's shapes) for tools.

Data goes to stdout; notes, warnings and errors go to stderr, so `-o json` pipes cleanly.
"""

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from enum import Enum, StrEnum
from operator import attrgetter
from typing import Annotated, Any

import typer
import yaml
from pydantic import BaseModel
from rich import box
from rich.cells import cell_len
from rich.console import Console
from rich.table import Table


class Output(StrEnum):
    table = "table"
    json = "json"
    yaml = "yaml"


OutputOption = Annotated[
    Output,
    typer.Option(
        "--output", "-o", case_sensitive=False, help="table (for people), json or yaml (for tools)."
    ),
]

Column = str | tuple[str | Callable[[Any], Any], str]
"""A field name, or (field name, header), or (a function of the item, header)."""

RICH_ROWS = 500
"""Up to this many rows a terminal gets Rich's table, which wraps long cells to fit; beyond,
plain columns. Rich lays out each cell on its own, ~1.2 ms a row: 10,000 assets took 12 s."""
_ONE_LINE = str.maketrans({code: " " for code in [*range(32), 127]})
"""Control characters as spaces: a row is one line (for awk too), and a cell cannot steer
the terminal."""


def console() -> Console:
    # Markup off: server messages and tags may contain [brackets] that are not Rich markup.
    out = Console(markup=False, highlight=False, emoji=False)
    if not out.is_terminal:
        out.width = 4096  # piped into grep or a file: never cut a cell short
    return out


def note(message: str) -> None:
    """A line for the person at the terminal, kept out of the data on stdout."""
    typer.echo(message, err=True)


def show(item: BaseModel, output: Output, *, extra: Mapping[str, Any] | None = None) -> None:
    """One object: field/value lines, or its API shape (`extra` is shown in tables only)."""
    if output is not Output.table:
        emit(item.model_dump(mode="json"), output)
        return
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    for key, value in {**dict(item), **(extra or {})}.items():
        table.add_row(key, cell(value))
    console().print(table)


def listing(items: Iterable[BaseModel], output: Output, columns: Sequence[Column]) -> None:
    """Many objects: one row each, or a list of their API shapes."""
    if output is not Output.table:
        emit([item.model_dump(mode="json") for item in items], output)
        return
    fields = [c if isinstance(c, str) else c[0] for c in columns]
    headers = [c.upper().replace("_", " ") if isinstance(c, str) else c[1] for c in columns]
    values = [f if callable(f) else attrgetter(f) for f in fields]
    rows = [[cell(value(item)).translate(_ONE_LINE) for value in values] for item in items]
    out = console()
    if out.is_terminal and len(rows) <= RICH_ROWS:
        table = Table(*headers, box=box.SIMPLE_HEAD, pad_edge=False)
        for row in rows:
            table.add_row(*row)
        out.print(table)
    else:
        _plain(out, headers, rows)


def page(
    items: Sequence[BaseModel], next_cursor: str | None, output: Output, columns: Sequence[Column]
) -> None:
    """Some items of a longer list: rows, or the API's page, `{"items", "next_cursor"}`."""
    if output is Output.table:
        listing(items, output, columns)
        return
    emit(
        {"items": [item.model_dump(mode="json") for item in items], "next_cursor": next_cursor},
        output,
    )


def _plain(out: Console, headers: list[str], rows: list[list[str]]) -> None:
    """Rows as aligned columns, never wrapped: for awk and cut, and for tables too long for Rich.

    On a terminal the header is bold and ruled, as in Rich's table.
    """
    widths = [max(map(cell_len, column)) for column in zip(headers, *rows, strict=True)]

    def line(cells: list[str]) -> str:
        return "  ".join(
            c + " " * (w - cell_len(c)) for c, w in zip(cells, widths, strict=True)
        ).rstrip()

    header = line(headers)
    if out.is_terminal:
        out.print(header, style="bold", soft_wrap=True)
        out.print("─" * cell_len(header), style="dim", soft_wrap=True)
    else:
        typer.echo(header)
    if rows:
        typer.echo("\n".join(map(line, rows)))


def emit(data: Any, output: Output) -> None:
    if output is Output.json:
        typer.echo(json.dumps(data, indent=2, ensure_ascii=False))
    else:
        typer.echo(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), nl=False)


def cell(value: Any) -> str:
    """A value as one short table cell."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    if isinstance(value, BaseModel):
        return cell(value.model_dump(mode="json"))
    if isinstance(value, Mapping):
        if all(isinstance(v, str) for v in value.values()):
            return ", ".join(f"{k}={v}" for k, v in value.items())
        return json.dumps(value, separators=(",", ":"), default=str)
    if isinstance(value, list | tuple):
        return ", ".join(_item(v) for v in value)
    return str(value)


def _item(value: Any) -> str:
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    if isinstance(value, Mapping):
        return " ".join(str(v) for v in value.values() if v is not None)
    return cell(value)
