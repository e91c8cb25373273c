"""Procurement: `client.vendors`, `client.profiles`, `client.purchase_requests`,
`client.purchase_orders`, `client.procurement` (matching, report, webhooks)."""

from __future__ import annotations  # `list` is also a method name here

from datetime import date
from typing import Any

from metalyard.auth.changes.schemas import ChangeRequestOut
from metalyard.procurement.schemas import (
    MatchOut,
    OrderEventOut,
    ProfileOut,
    ProfileVersionOut,
    PurchaseOrderOut,
    PurchaseRequestOut,
    ReportOut,
    SerialImportResult,
    SpecChange,
    VendorOut,
    WebhookOut,
)
from metalyard.sdk.base import Data, Namespace, with_version
from metalyard.sdk.http import Listing, body, parse, segment
from metalyard.sdk.inventory import ACCEPTED


class Vendors(Namespace):
    path = "/v1/vendors"

    def list(
        self,
        *,
        sort: str | None = None,
        page_size: int | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Listing[VendorOut]:
        return self._http.pages(
            self.path, VendorOut, {"sort": sort}, page_size, limit=limit, cursor=cursor
        )

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
        self,
        *,
        vendor: str | None = None,
        page_size: int | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Listing[ProfileOut]:
        return self._http.pages(
            self.path, ProfileOut, {"vendor": vendor}, page_size, limit=limit, cursor=cursor
        )

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


class PurchaseRequests(Namespace):
    path = "/v1/purchase-requests"

    def list(
        self,
        *,
        state: str | None = None,
        page_size: int | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Listing[PurchaseRequestOut]:
        return self._http.pages(
            self.path, PurchaseRequestOut, {"state": state}, page_size, limit=limit, cursor=cursor
        )

    def get(self, request_id: int) -> PurchaseRequestOut:
        return self._http.get(self._item(request_id), PurchaseRequestOut)

    def create(self, title: str, lines: list[dict[str, Any]]) -> PurchaseRequestOut:
        payload = {"title": title, "lines": lines}
        return self._http.send("POST", self.path, PurchaseRequestOut, json=payload)

    def approve(self, request_id: int, reason: str = "") -> PurchaseRequestOut | ChangeRequestOut:
        """Approved, or (by default) a change request waiting for a second person."""
        answer = self._http.request(
            "POST", self._item(request_id, "approve"), json={"reason": reason}
        )
        model = ChangeRequestOut if answer.status_code == ACCEPTED else PurchaseRequestOut
        return parse(model, answer.json())

    def reject(self, request_id: int) -> PurchaseRequestOut:
        return self._http.send("POST", self._item(request_id, "reject"), PurchaseRequestOut)


class PurchaseOrders(Namespace):
    path = "/v1/purchase-orders"

    def list(
        self,
        *,
        state: str | None = None,
        page_size: int | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Listing[PurchaseOrderOut]:
        return self._http.pages(
            self.path, PurchaseOrderOut, {"state": state}, page_size, limit=limit, cursor=cursor
        )

    def get(self, number: str) -> PurchaseOrderOut:
        return self._http.get(self._item(number), PurchaseOrderOut)

    def create(self, vendor: str, lines: list[dict[str, Any]]) -> PurchaseOrderOut:
        payload = {"vendor": vendor, "lines": lines}
        return self._http.send("POST", self.path, PurchaseOrderOut, json=payload)

    def transition(
        self, number: str, to: str, *, reason: str = "", version: int | None = None
    ) -> PurchaseOrderOut:
        payload = with_version({"to": to, "reason": reason}, version)
        path = self._item(number, "transition")
        return self._http.send("POST", path, PurchaseOrderOut, json=payload)

    def add_stage(self, number: str, quantity: int, expected_on: date) -> PurchaseOrderOut:
        payload = {"quantity": quantity, "expected_on": expected_on.isoformat()}
        return self._http.send("POST", self._item(number, "stages"), PurchaseOrderOut, json=payload)

    def move_stage(self, number: str, stage: int, to: str, reason: str = "") -> PurchaseOrderOut:
        path = self._item(number, "stages", stage, "transition")
        return self._http.send("POST", path, PurchaseOrderOut, json={"to": to, "reason": reason})

    def import_serials(self, number: str, csv_text: str) -> SerialImportResult:
        answer = self._http.request(
            "POST", self._item(number, "serials"), content=csv_text, content_type="text/csv"
        )
        return parse(SerialImportResult, answer.json())

    def events(self, number: str) -> list[OrderEventOut]:
        answer = self._http.request("GET", self._item(number, "events"))
        return [parse(OrderEventOut, event) for event in answer.json()]


class Procurement(Namespace):
    """Matching discovered assets to orders, the report, and webhooks."""

    path = "/v1/procurement"

    def match(self, serial: str, *, profile: tuple[str, str, int] | None = None) -> MatchOut:
        payload: dict[str, Any] = {"serial": serial}
        if profile:
            payload["profile"] = dict(zip(("vendor", "profile", "version"), profile, strict=True))
        return self._http.send("POST", self._item("matches"), MatchOut, json=payload)

    def passed(self, serial: str) -> MatchOut:
        return self._http.send("POST", self._item("matches", serial, "passed"), MatchOut)

    def report(self) -> ReportOut:
        return self._http.get(self._item("report"), ReportOut)

    def report_csv(self) -> str:
        return self._http.request("GET", self._item("report"), params={"format": "csv"}).text

    def webhooks(self) -> list[WebhookOut]:
        answer = self._http.request("GET", self._item("webhooks"))
        return [parse(WebhookOut, hook) for hook in answer.json()]

    def add_webhook(self, url: str, *, order: str | None = None) -> WebhookOut:
        payload = {"url": url, "order": order}
        return self._http.send("POST", self._item("webhooks"), WebhookOut, json=payload)

    def delete_webhook(self, hook_id: int) -> None:
        self._http.request("DELETE", self._item("webhooks", hook_id))
