"""BMC credentials and an asset's BMC: `client.bmc_credentials`, `client.bmc`."""

from collections.abc import Sequence
from typing import Any

from metalyard.drivers.base import BootDevice, BootMode, PowerAction
from metalyard.drivers.schemas import (
    BmcCheckOut,
    BmcCredentialOut,
    BootOut,
    FirmwareComponentOut,
    PowerOut,
    SensorsOut,
)
from metalyard.sdk.base import Namespace, with_version
from metalyard.sdk.http import Listing, parse, segment


class BmcCredentials(Namespace):
    """Named BMC logins; passwords go in and never come back out."""

    path = "/v1/bmc-credentials"

    def list(
        self,
        *,
        page_size: int | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Listing[BmcCredentialOut]:
        return self._http.pages(
            self.path, BmcCredentialOut, {}, page_size, limit=limit, cursor=cursor
        )

    def get(self, name: str) -> BmcCredentialOut:
        return self._http.get(self._item(name), BmcCredentialOut)

    def create(
        self, name: str, *, username: str, password: str, networks: Sequence[str]
    ) -> BmcCredentialOut:
        """`networks`: the prefixes its BMCs are in; it is never sent anywhere else."""
        payload = {
            "name": name,
            "username": username,
            "password": password,
            "networks": list(networks),
        }
        return self._http.send("POST", self.path, BmcCredentialOut, json=payload)

    def update(
        self,
        name: str,
        *,
        username: str | None = None,
        password: str | None = None,
        networks: Sequence[str] | None = None,
        version: int | None = None,
    ) -> BmcCredentialOut:
        fields: dict[str, Any] = {
            "username": username,
            "password": password,
            "networks": None if networks is None else list(networks),
        }
        payload = with_version({k: v for k, v in fields.items() if v is not None}, version)
        return self._http.send("PATCH", self._item(name), BmcCredentialOut, json=payload)

    def delete(self, name: str) -> None:
        self._http.request("DELETE", self._item(name))


class Bmc(Namespace):
    """An asset's BMC, by the asset's serial; BMC errors keep the BMC's own message."""

    path = "/v1/assets"

    def _at(self, serial: str, what: str) -> str:
        return f"{self.path}/{segment(serial)}/{what}"

    def power_state(self, serial: str) -> PowerOut:
        return self._http.get(self._at(serial, "power"), PowerOut)

    def power(self, serial: str, action: PowerAction | str) -> PowerOut:
        payload = {"action": PowerAction(action).value}
        return self._http.send("POST", self._at(serial, "power"), PowerOut, json=payload)

    def boot(self, serial: str) -> BootOut:
        return self._http.get(self._at(serial, "boot"), BootOut)

    def set_boot(
        self,
        serial: str,
        device: BootDevice | str,
        *,
        persistent: bool = False,
        mode: BootMode | str | None = None,
    ) -> BootOut:
        payload = {
            "device": BootDevice(device).value,
            "persistent": persistent,
            "mode": BootMode(mode).value if mode else None,
        }
        return self._http.send("PUT", self._at(serial, "boot"), BootOut, json=payload)

    def check(self, serial: str) -> BmcCheckOut:
        return self._http.send("POST", self._at(serial, "bmc/check"), BmcCheckOut)

    def firmware(self, serial: str) -> list[FirmwareComponentOut]:
        answer = self._http.request("GET", self._at(serial, "firmware")).json()
        return [parse(FirmwareComponentOut, item) for item in answer]

    def sensors(self, serial: str) -> SensorsOut:
        return self._http.get(self._at(serial, "sensors"), SensorsOut)
