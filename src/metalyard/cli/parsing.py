"""Turning command-line words into API values: `k=v` pairs, JSON, durations, points in time."""

import json
import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import typer

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"(\d+)([smhdw])")


def pairs(values: Iterable[str], *, what: str = "tag", form: str = "key=value") -> dict[str, str]:
    """`["k=v", "k2=v2"]` → `{"k": "v", "k2": "v2"}`.

    A word without `=` is a usage error, and so is a key given twice: keeping either value
    would silently drop the other.
    """
    result: dict[str, str] = {}
    for value in values:
        key, found, item = value.partition("=")
        key = key.strip()
        if not found or not key:
            raise typer.BadParameter(f"{what} {value!r} must look like {form}")
        if key in result:
            raise typer.BadParameter(f"{what} {key!r} is given more than once")
        result[key] = item.strip()
    return result


def json_pairs(words: Iterable[str], *, what: str = "parameter") -> dict[str, Any]:
    """`["rack=r1", "sleep=0"]` → `{"rack": "r1", "sleep": 0}`: JSON where it parses, else text.

    So `n=5` is a number and `on=true` a boolean; quote to keep text (`version='"1.10"'`).
    """
    result: dict[str, Any] = {}
    for key, text in pairs(words, what=what).items():
        try:
            result[key] = json.loads(text)
        except ValueError:
            result[key] = text
    return result


def json_object(text: str | None, *, what: str = "payload") -> dict[str, Any]:
    """A JSON object given on the command line; anything else is a usage error."""
    if text is None:
        return {}
    try:
        value = json.loads(text)
    except ValueError as error:
        raise typer.BadParameter(f"{what} is not valid JSON: {error}") from None
    if not isinstance(value, dict):
        raise typer.BadParameter(f'{what} must be a JSON object, like {{"ok": true}}')
    return value


def interfaces(values: Iterable[str]) -> list[dict[str, Any]]:
    """`["eno1=aa:bb:cc:dd:ee:ff"]` → `[{"name": "eno1", "mac": "aa:bb:…"}]`."""
    named = pairs(values, what="interface", form="NAME=MAC (e.g. eno1=52:54:00:aa:00:01)")
    return [{"name": name, "mac": mac} for name, mac in named.items()]


def duration(text: str | None) -> int | None:
    """Seconds in `90`, `30m`, `1h`, `2d`, `1w` or `1h30m`."""
    if text is None:
        return None
    text = text.strip().lower()
    if text.isdigit():
        return int(text)
    if not text or _DURATION.sub("", text):
        raise typer.BadParameter(f"{text!r} is not a duration like 90, 30m, 1h, 2d or 1h30m")
    return sum(int(n) * UNITS[unit] for n, unit in _DURATION.findall(text))


def moment(text: str | None) -> datetime | None:
    """A point in time: ISO 8601 (local time unless it says otherwise), or `2h` for 2h ago."""
    if text is None:
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        try:
            seconds = duration(text)
        except typer.BadParameter:
            raise typer.BadParameter(
                f"{text!r} is neither a time like 2024-05-01T12:00 nor an age like 2h"
            ) from None
        return datetime.now(UTC) - timedelta(seconds=seconds or 0)
    return when if when.tzinfo else when.astimezone()


def drop_none(**fields: Any) -> dict[str, Any]:
    """The options a person actually gave (Typer gives None for the others)."""
    return {key: value for key, value in fields.items() if value is not None}
