"""What every namespace of the client shares."""

from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel

from metalyard.sdk.http import Http, segment

Data = BaseModel | Mapping[str, Any] | None
"""Input: a *Create/*Update schema instance, a plain dict, or None (then keyword arguments)."""


class Namespace:
    """One noun of the API (`client.assets`, `client.sites`…)."""

    path: str = ""

    def __init__(self, http: Http) -> None:
        self._http = http

    def _item(self, *parts: str | int) -> str:
        return "/".join([self.path, *(segment(p) for p in parts)])

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._http.url}{self.path}>"


def many(value: str | Iterable[Any] | None) -> list[str]:
    """One value or several, as the list a repeatable query parameter takes."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


def with_version(fields: dict[str, Any], version: int | None) -> dict[str, Any]:
    if version is not None:
        fields["version"] = version
    return fields
