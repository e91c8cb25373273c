"""Reading an asset import file (CSV, JSON or YAML), and naming the rows that were refused."""

import csv
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import typer
import yaml

from metalyard.cli import parsing
from metalyard.cli.exit_codes import ExitCode
from metalyard.cli.output import note
from metalyard.errors import InvalidInput

LIST_SEPARATOR = ";"


@dataclass
class Row:
    where: str
    """Where the row came from, for messages: `line 4` of a CSV, `item 3` of a list."""
    fields: dict[str, Any]


@dataclass
class Problem:
    where: str
    serial: str
    field: str
    message: str

    def __str__(self) -> str:
        serial = f" ({self.serial})" if self.serial else ""
        field = f"{self.field}: " if self.field else ""
        return f"{self.where or 'file'}{serial}: {field}{self.message}"


def read(path: Path) -> list[Row]:
    """Every row of the file as API fields; any local problem ends the command (exit 7)."""
    problems: list[Problem] = []
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            rows = _csv(path, problems)
        elif suffix == ".json":
            text = path.read_text(encoding="utf-8-sig")
            rows = _items(json.loads(text, object_pairs_hook=_json_mapping), problems)
        elif suffix in (".yaml", ".yml"):
            rows = _items(yaml.load(path.read_text(), Loader=_YamlLoader), problems)
        else:
            raise InvalidInput(f"{path}: give a .csv, .json, .yaml or .yml file")
    except (ValueError, yaml.YAMLError, csv.Error) as error:
        raise InvalidInput(f"{path} cannot be read: {error}") from None
    for row in rows:
        _normalise(row, problems)
    if problems:
        report(f"{path} has {len(problems)} problem(s); nothing was imported", problems)
    if not rows:
        raise InvalidInput(f"{path} holds no assets")
    return rows


def server_problems(error: InvalidInput, rows: list[Row]) -> list[Problem]:
    """The server's per-row errors, named by line or item of the file.

    The server counts rows from 0, in `row`, and in `first_row` with messages such as
    "serial repeats row 0"; both are turned into the file's own numbering, so one message
    speaks of one kind of place.
    """
    problems = []
    for detail in error.details if isinstance(error.details, list) else []:
        if not isinstance(detail, dict):
            continue
        index, field = detail.get("row"), str(detail.get("field") or "")
        path = field.split(".")
        if index is None and len(path) > 1 and path[0] == "assets" and path[1].isdigit():
            index, field = int(path[1]), ".".join(path[2:])  # a validation error
        row = rows[index] if isinstance(index, int) and 0 <= index < len(rows) else None
        serial = detail.get("serial") or (row.fields.get("serial") if row else "") or ""
        where = row.where if row else ""
        message = str(detail.get("message", ""))
        first = detail.get("first_row")
        if isinstance(first, int):
            message = message.replace(f"row {first}", _where(rows, first))
        problems.append(Problem(where, str(serial), field, message))
    return problems


def _where(rows: list[Row], index: int) -> str:
    return rows[index].where if index < len(rows) else f"row {index}"


def report(headline: str, problems: list[Problem]) -> NoReturn:
    note(f"error: {headline}")
    for problem in problems:
        note(f"  {problem}")
    raise typer.Exit(int(ExitCode.INVALID_INPUT))


def _csv(path: Path, problems: list[Problem]) -> list[Row]:
    with path.open(newline="", encoding="utf-8-sig") as file:
        reader = csv.reader(file)
        header = next(reader, None)
        if header is None:
            return []
        columns = [name.strip().lower().replace("-", "_").replace(" ", "_") for name in header]
        for column in sorted({c for c in columns if c and columns.count(c) > 1}):
            problems.append(Problem("line 1", "", column, "the column is given more than once"))
        rows = []
        for cells in reader:
            if not any(cell.strip() for cell in cells):
                continue
            row = Row(f"line {reader.line_num}", {})
            for column, cell in zip(columns, cells, strict=False):
                if cell.strip():
                    row.fields[column] = cell.strip()
            if len(cells) > len(columns) or "" in row.fields:
                problems.append(
                    Problem(row.where, row.fields.get("serial", ""), "", "a cell has no column")
                )
            rows.append(row)
        return rows


def _items(data: Any, problems: list[Problem]) -> list[Row]:
    if isinstance(data, dict) and "assets" in data:
        data = data["assets"]
    if not isinstance(data, list):
        raise ValueError("expected a list of assets (or an object with an 'assets' list)")
    rows = []
    for number, item in enumerate(data, start=1):
        row = Row(f"item {number}", item if isinstance(item, dict) else {})
        if not isinstance(item, dict):
            problems.append(Problem(row.where, "", "", "an asset must be a mapping of fields"))
        for field, repeat in _repeated_keys(row.fields):
            problems.append(Problem(row.where, str(row.fields.get("serial", "")), field, repeat))
        rows.append(row)
    return rows


class _Mapping(dict):
    """An object of a JSON or YAML file, with the keys it gives more than once.

    Both parsers would keep the last value of a repeated key and drop the others unseen.
    """

    repeats: list[str]


def _json_mapping(pairs: list[tuple[str, Any]]) -> _Mapping:
    mapping = _Mapping(pairs)
    counts = Counter(key for key, _ in pairs)
    mapping.repeats = [f"{key!r} is given more than once" for key, n in counts.items() if n > 1]
    return mapping


class _YamlLoader(yaml.BaseLoader):
    """Every scalar a string, every mapping a `_Mapping`.

    So serial 00123 and firmware 1.10 stay as written, and a MAC of digits is not read as a
    base-60 number; the server parses numbers and booleans.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> _Mapping:
        mapping = _Mapping(super().construct_mapping(node, deep=deep))
        lines: dict[Any, list[int]] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            lines.setdefault(key, []).append(key_node.start_mark.line + 1)
        mapping.repeats = [
            f"{key!r} is given more than once (lines {', '.join(map(str, at))})"
            for key, at in lines.items()
            if len(at) > 1
        ]
        return mapping


def _repeated_keys(value: Any, field: str = "") -> Iterator[tuple[str, str]]:
    """(field, message) for each key repeated in a row, however deep."""
    if isinstance(value, _Mapping):
        for repeat in value.repeats:
            yield field, repeat
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _repeated_keys(item, f"{field}.{key}" if field else str(key))
    elif isinstance(value, list):
        for item in value:
            yield from _repeated_keys(item, field)


def _normalise(row: Row, problems: list[Problem]) -> None:
    """Expand the one-cell spellings: `eno1=MAC;eno2=MAC`, `k=v;k2=v2`, facts as JSON."""
    fields = row.fields
    try:
        if isinstance(fields.get("interfaces"), str):
            fields["interfaces"] = parsing.interfaces(_split(fields["interfaces"]))
        for name in ("tags", "firmware"):
            if isinstance(fields.get(name), str):
                fields[name] = parsing.pairs(_split(fields[name]), what=name.rstrip("s"))
        if isinstance(fields.get("facts"), str):
            fields["facts"] = json.loads(fields["facts"])
    except typer.BadParameter as error:
        problems.append(Problem(row.where, str(fields.get("serial", "")), "", error.message))
    except ValueError as error:
        problems.append(Problem(row.where, str(fields.get("serial", "")), "facts", str(error)))


def _split(cell: str) -> list[str]:
    return [part for part in cell.split(LIST_SEPARATOR) if part.strip()]
