"""IP address management: `client.prefixes`, `client.ip_allocations`."""

from __future__ import annotations  # `list` is also a method name here

from typing import Any

from metalyard.errors import NotFound
from metalyard.network.addressing import PrefixRole
from metalyard.network.schemas import IpAllocationOut, PrefixOut, ReservedRangeOut
from metalyard.sdk.base import Data, Namespace, with_version
from metalyard.sdk.http import Listing, body, parse


class Prefixes(Namespace):
    """Prefixes are addressed by id; `find(cidr)` finds one by its CIDR."""

    path = "/v1/prefixes"

    def list(
        self,
        *,
        site: str | None = None,
        role: PrefixRole | str | None = None,
        cidr: str | None = None,
        contains: str | None = None,
        sort: str | None = None,
        page_size: int | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Listing[PrefixOut]:
        """Every matching prefix; `contains` finds the one holding an address."""
        params = {"site": site, "role": role, "cidr": cidr, "contains": contains, "sort": sort}
        return self._http.pages(self.path, PrefixOut, params, page_size, limit=limit, cursor=cursor)

    def get(self, prefix_id: int) -> PrefixOut:
        return self._http.get(self._item(prefix_id), PrefixOut)

    def find(self, cidr: str) -> PrefixOut:
        """The prefix of exactly this CIDR (as the server normalises it), or NotFound."""
        for prefix in self.list(cidr=cidr, page_size=1):
            return prefix
        raise NotFound(f"no prefix {cidr}", details={"cidr": cidr})

    def create(self, data: Data = None, /, **fields: Any) -> PrefixOut:
        return self._http.send("POST", self.path, PrefixOut, json=body(data, fields))

    def update(
        self, prefix_id: int, data: Data = None, /, *, version: int | None = None, **fields: Any
    ) -> PrefixOut:
        """Change the fields given (`gateway=None` clears it); with `version`, refuse
        (StaleVersion) if the prefix changed since."""
        payload = with_version(body(data, fields), version)
        return self._http.send("PATCH", self._item(prefix_id), PrefixOut, json=payload)

    def delete(self, prefix_id: int) -> None:
        self._http.request("DELETE", self._item(prefix_id))

    def reserved_ranges(self, prefix_id: int) -> list[ReservedRangeOut]:
        answer = self._http.request("GET", self._item(prefix_id, "reserved-ranges")).json()
        return [parse(ReservedRangeOut, item) for item in answer]

    def reserve(self, prefix_id: int, start: str, end: str, *, reason: str) -> ReservedRangeOut:
        """Keep `start`..`end` (both included) out of allocation."""
        payload = {"start": start, "end": end, "reason": reason}
        return self._http.send(
            "POST", self._item(prefix_id, "reserved-ranges"), ReservedRangeOut, json=payload
        )

    def unreserve(self, prefix_id: int, range_id: int) -> None:
        self._http.request("DELETE", self._item(prefix_id, "reserved-ranges", range_id))


class IpAllocations(Namespace):
    """Addresses held by asset interfaces; allocating is idempotent per interface and prefix."""

    path = "/v1/ip-allocations"

    def list(
        self,
        *,
        prefix_id: int | None = None,
        serial: str | None = None,
        interface: str | None = None,
        site: str | None = None,
        role: PrefixRole | str | None = None,
        sort: str | None = None,
        page_size: int | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Listing[IpAllocationOut]:
        params = {
            "prefix_id": prefix_id,
            "serial": serial,
            "interface": interface,
            "site": site,
            "role": role,
            "sort": sort,
        }
        return self._http.pages(
            self.path, IpAllocationOut, params, page_size, limit=limit, cursor=cursor
        )

    def get(self, address: str) -> IpAllocationOut:
        return self._http.get(self._item(address), IpAllocationOut)

    def allocate(
        self,
        serial: str,
        interface: str,
        *,
        prefix_id: int | None = None,
        site: str | None = None,
        role: PrefixRole | str | None = None,
        address: str | None = None,
    ) -> IpAllocationOut:
        """An address for the interface, from `prefix_id` or from `site`'s prefixes of `role`:
        the one it holds there already, `address`, or the lowest free one."""
        fields = {"prefix_id": prefix_id, "site": site, "role": role, "address": address}
        payload = {
            "serial": serial,
            "interface": interface,
            **{k: v for k, v in fields.items() if v is not None},
        }
        return self._http.send("POST", self.path, IpAllocationOut, json=payload)

    def release(self, address: str) -> None:
        self._http.request("DELETE", self._item(address))

    def release_interface(
        self, serial: str, interface: str | None = None, *, prefix_id: int | None = None
    ) -> list[IpAllocationOut]:
        """Release what the asset (or one interface) holds; what was released, maybe nothing."""
        params = {"serial": serial, "interface": interface, "prefix_id": prefix_id}
        answer = self._http.request("DELETE", self.path, params=params).json()
        return [parse(IpAllocationOut, item) for item in answer]
