"""What is booting and where it stands: `client.discovery`."""

from metalyard.discovery.schemas import DiscoveryRowOut, WhyOut
from metalyard.sdk.base import Namespace
from metalyard.sdk.http import parse, segment


class Discovery(Namespace):
    path = "/v1/discovery"

    def booting(self) -> list[DiscoveryRowOut]:
        """Assets an agent booted on that are not in service yet."""
        return [parse(DiscoveryRowOut, row) for row in self._http.request("GET", self.path).json()]

    def why(self, serial: str) -> WhyOut:
        """What the asset waits on or what blocks it."""
        return self._http.get(f"/v1/assets/{segment(serial)}/why", WhyOut)
