"""Sites, racks, machine classes and assets: `client.sites`, `client.racks`…"""

from collections.abc import Iterable, Mapping
from typing import Any

from metalyard.auth.changes.schemas import ChangeRequestOut
from metalyard.inventory.lifecycle import AssetState, Health
from metalyard.inventory.schemas import (
    AssetOut,
    ImportResult,
    MachineClassOut,
    RackOut,
    SiteOut,
    StateChangeOut,
)
from metalyard.sdk.base import Data, Namespace, many, with_version
from metalyard.sdk.http import Listing, body, parse

ACCEPTED = 202
"""The server parked the command as a change request: it waits for a second person."""


class Sites(Namespace):
    path = "/v1/sites"

    def list(
        self,
        *,
        sort: str | None = None,
        page_size: int | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Listing[SiteOut]:
        return self._http.pages(
            self.path, SiteOut, {"sort": sort}, page_size, limit=limit, cursor=cursor
        )

    def get(self, name: str) -> SiteOut:
        return self._http.get(self._item(name), SiteOut)

    def create(self, data: Data = None, /, **fields: Any) -> SiteOut:
        return self._http.send("POST", self.path, SiteOut, json=body(data, fields))

    def update(
        self, name: str, data: Data = None, /, *, version: int | None = None, **fields: Any
    ) -> SiteOut:
        payload = with_version(body(data, fields), version)
        return self._http.send("PATCH", self._item(name), SiteOut, json=payload)

    def delete(self, name: str) -> None:
        self._http.request("DELETE", self._item(name))


class Racks(Namespace):
    """Racks are addressed by id; `list(site=...)` finds one by its name."""

    path = "/v1/racks"

    def list(
        self,
        *,
        site: str | None = None,
        sort: str | None = None,
        page_size: int | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Listing[RackOut]:
        return self._http.pages(
            self.path, RackOut, {"site": site, "sort": sort}, page_size, limit=limit, cursor=cursor
        )

    def get(self, rack_id: int) -> RackOut:
        return self._http.get(self._item(rack_id), RackOut)

    def create(self, data: Data = None, /, **fields: Any) -> RackOut:
        return self._http.send("POST", self.path, RackOut, json=body(data, fields))

    def update(
        self, rack_id: int, data: Data = None, /, *, version: int | None = None, **fields: Any
    ) -> RackOut:
        payload = with_version(body(data, fields), version)
        return self._http.send("PATCH", self._item(rack_id), RackOut, json=payload)

    def delete(self, rack_id: int) -> None:
        self._http.request("DELETE", self._item(rack_id))


class MachineClasses(Namespace):
    path = "/v1/machine-classes"

    def list(
        self,
        *,
        sort: str | None = None,
        page_size: int | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Listing[MachineClassOut]:
        return self._http.pages(
            self.path, MachineClassOut, {"sort": sort}, page_size, limit=limit, cursor=cursor
        )

    def get(self, name: str) -> MachineClassOut:
        return self._http.get(self._item(name), MachineClassOut)

    def create(self, data: Data = None, /, **fields: Any) -> MachineClassOut:
        return self._http.send("POST", self.path, MachineClassOut, json=body(data, fields))

    def update(
        self, name: str, data: Data = None, /, *, version: int | None = None, **fields: Any
    ) -> MachineClassOut:
        payload = with_version(body(data, fields), version)
        return self._http.send("PATCH", self._item(name), MachineClassOut, json=payload)

    def delete(self, name: str) -> None:
        self._http.request("DELETE", self._item(name))


class Assets(Namespace):
    path = "/v1/assets"

    def list(
        self,
        *,
        state: AssetState | str | Iterable[AssetState | str] | None = None,
        site: str | None = None,
        rack: str | None = None,
        machine_class: str | None = None,
        owner_team: str | None = None,
        project: str | None = None,
        health: Health | str | None = None,
        maintenance: bool | None = None,
        tag: str | Iterable[str] | Mapping[str, str | None] | None = None,
        q: str | None = None,
        sort: str | None = None,
        page_size: int | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Listing[AssetOut]:
        """Every matching asset; `tag` takes `key=value` or `key` strings, or a dict.

        All filters are ANDed, and several states match any of them.
        """
        if isinstance(tag, Mapping):
            tag = [key if value is None else f"{key}={value}" for key, value in tag.items()]
        params = {
            "state": many(state),
            "site": site,
            "rack": rack,
            "machine_class": machine_class,
            "owner_team": owner_team,
            "project": project,
            "health": health,
            "maintenance": maintenance,
            "tag": many(tag),
            "q": q,
            "sort": sort,
        }
        return self._http.pages(self.path, AssetOut, params, page_size, limit=limit, cursor=cursor)

    def get(self, serial: str) -> AssetOut:
        return self._http.get(self._item(serial), AssetOut)

    def create(self, data: Data = None, /, **fields: Any) -> AssetOut:
        return self._http.send("POST", self.path, AssetOut, json=body(data, fields))

    def update(
        self, serial: str, data: Data = None, /, *, version: int | None = None, **fields: Any
    ) -> AssetOut:
        """Change the fields given; with `version`, refuse (StaleVersion) if it changed since."""
        payload = with_version(body(data, fields), version)
        return self._http.send("PATCH", self._item(serial), AssetOut, json=payload)

    def delete(self, serial: str, reason: str = "") -> ChangeRequestOut | None:
        """None once deleted, or the change request when the deletion waits for approval."""
        response = self._http.request("DELETE", self._item(serial), params={"reason": reason})
        if response.status_code == ACCEPTED:
            return parse(ChangeRequestOut, response.json())
        return None

    def transition(
        self,
        serial: str,
        to: AssetState | str,
        reason: str,
        version: int | None = None,
    ) -> AssetOut | ChangeRequestOut:
        """The moved asset, or the change request when the move waits for approval."""
        payload = with_version({"to": str(to), "reason": reason}, version)
        response = self._http.request("POST", self._item(serial, "transition"), json=payload)
        model = ChangeRequestOut if response.status_code == ACCEPTED else AssetOut
        return parse(model, response.json())

    def history(
        self,
        serial: str,
        *,
        page_size: int | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Listing[StateChangeOut]:
        """Every state change of the asset, oldest first."""
        return self._http.pages(
            self._item(serial, "history"),
            StateChangeOut,
            None,
            page_size,
            limit=limit,
            cursor=cursor,
        )

    def tag(
        self,
        serial: str,
        set: Mapping[str, str] | None = None,  # the API's field name
        remove: Iterable[str] | None = None,
    ) -> AssetOut:
        """Set some tags and remove others, leaving the rest as they are."""
        payload = {"set": dict(set or {}), "remove": many(remove)}
        return self._http.send("POST", self._item(serial, "tags"), AssetOut, json=payload)

    def import_(self, rows: Iterable[Data]) -> ImportResult:
        """Enrol many assets at once, all or nothing.

        A bad row rejects the whole import with InvalidInput whose `details` list every
        problem as {row, serial, field, message} (row counts from 0).
        """
        payload = {"assets": [body(row, {}) for row in rows]}
        return self._http.send("POST", self._item("import"), ImportResult, json=payload)
