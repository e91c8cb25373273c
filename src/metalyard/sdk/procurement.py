"""Vendors and hardware profiles: `client.vendors`, `client.profiles`."""

from __future__ import annotations  # `list` is also a method name here

from collections.abc import Iterator
from typing import Any

from metalyard.procurement.schemas import ProfileOut, ProfileVersionOut, SpecChange, VendorOut
from metalyard.sdk.base import Data, Namespace, with_version
from metalyard.sdk.http import body, parse, segment


class Vendors(Namespace):
    path = "/v1/vendors"

    def list(self, *, sort: str | None = None, page_size: int | None = None) -> Iterator[VendorOut]:
        return self._http.pages(self.path, VendorOut, {"sort": sort}, page_size)

    def get(self, name: str) -> VendorOut:
        return self._http.get(self._item(name), VendorOut)

    def create(self, data: Data = None, /, **fields: Any) -> VendorOut:
        return self._http.send("POST", self.path, VendorOut, json=body(data, fields))

    def update(
        self, name: str, data: Data = None, /, *, version: int | None = None, **fields: Any
    ) -> VendorOut:
        payload = with_version(body(data, fields), version)
        return self._http.send("PATCH", self._item(name), VendorOut, json=payload)

    def delete(self, name: str) -> None:
        self._http.request("DELETE", self._item(name))


class Profiles(Namespace):
    """Hardware profiles, named `vendor/name`, and their numbered versions."""

    path = "/v1/profiles"

    def list(
        self, *, vendor: str | None = None, page_size: int | None = None
    ) -> Iterator[ProfileOut]:
        return self._http.pages(self.path, ProfileOut, {"vendor": vendor}, page_size)

    def get(self, vendor: str, name: str) -> ProfileOut:
        return self._http.get(self._item(vendor, name), ProfileOut)

    def create(
        self, vendor: str, name: str, *, spec: dict[str, Any], description: str = ""
    ) -> ProfileOut:
        payload = {"vendor": vendor, "name": name, "spec": spec, "description": description}
        return self._http.send("POST", self.path, ProfileOut, json=payload)

    def add_version(
        self, vendor: str, name: str, *, spec: dict[str, Any], note: str = ""
    ) -> ProfileVersionOut:
        path = self._item(vendor, name, "versions")
        return self._http.send("POST", path, ProfileVersionOut, json={"spec": spec, "note": note})

    def version(self, vendor: str, name: str, number: int) -> ProfileVersionOut:
        return self._http.get(self._item(vendor, name, "versions", number), ProfileVersionOut)

    def update_version(
        self, vendor: str, name: str, number: int, data: Data = None, /, **fields: Any
    ) -> ProfileVersionOut:
        path = self._item(vendor, name, "versions", number)
        return self._http.send("PATCH", path, ProfileVersionOut, json=body(data, fields))

    def diff(self, vendor: str, name: str, old: int, new: int) -> list[SpecChange]:
        answer = self._http.request(
            "GET", self._item(vendor, name, "diff"), params={"from": old, "to": new}
        )
        return [parse(SpecChange, change) for change in answer.json()]

    def of_class(self, machine_class: str) -> list[ProfileVersionOut]:
        answer = self._http.request("GET", self._class_path(machine_class))
        return [parse(ProfileVersionOut, item) for item in answer.json()]

    def set_for_class(
        self, machine_class: str, versions: list[tuple[str, str, int]]
    ) -> list[ProfileVersionOut]:
        """Replace the (vendor, profile, version) triples a machine class stands for."""
        payload = {"versions": [{"vendor": v, "profile": p, "version": n} for v, p, n in versions]}
        answer = self._http.request("PUT", self._class_path(machine_class), json=payload)
        return [parse(ProfileVersionOut, item) for item in answer.json()]

    @staticmethod
    def _class_path(machine_class: str) -> str:
        return f"/v1/machine-classes/{segment(machine_class)}/profile-versions"
