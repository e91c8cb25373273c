"""`Client`: one region of metalyard over HTTP, one attribute per noun of the API."""

from pathlib import Path
from types import TracebackType

import httpx

from metalyard.auth.schemas import WhoAmI
from metalyard.schemas import RegionOut
from metalyard.sdk.auth import Audit, ChangeRequests, Projects, Teams, Tokens, Users
from metalyard.sdk.discovery import Discovery
from metalyard.sdk.drivers import Bmc, BmcCredentials
from metalyard.sdk.http import Http, parse
from metalyard.sdk.inventory import Assets, MachineClasses, Racks, Sites
from metalyard.sdk.network import IpAllocations, Prefixes
from metalyard.sdk.orchestrator import Flows, Pools, Runs, Signals
from metalyard.sdk.procurement import (
    Procurement,
    Profiles,
    PurchaseOrders,
    PurchaseRequests,
    Vendors,
)


class Client:
    """A client of one region (regions share nothing, so use one client per region).

    `verify` is True (the system's CAs), False (no checks: testing only) or the path of a
    CA bundle. GET and HEAD are retried `retries` times on connection errors and on 503/504,
    with exponential backoff and jitter; never on 502, which says a BMC refused or failed for
    good (a retry would only lock its account sooner). Other methods are sent once: if their
    answer is lost after sending, `OutcomeUnknown` says they may have been carried out.
    Errors raise the same `metalyard.errors` classes the server raised, carrying its
    `message`, `details`, `http_status` and `request_id`.

    `region`, if given, is the region the client means: every call names it
    (X-Metalyard-Region), and a server of another region refuses it with `WrongRegion`
    before doing anything, so that a URL pointing at the wrong server changes nothing there.
    """

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        region: str | None = None,
        verify: bool | str | Path = True,
        timeout: float = 30.0,
        retries: int = 3,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._http = Http(
            url,
            token,
            region=region,
            verify=verify,
            timeout=timeout,
            retries=retries,
            transport=transport,
        )
        self.sites = Sites(self._http)
        self.racks = Racks(self._http)
        self.machine_classes = MachineClasses(self._http)
        self.assets = Assets(self._http)
        self.bmc = Bmc(self._http)
        self.bmc_credentials = BmcCredentials(self._http)
        self.prefixes = Prefixes(self._http)
        self.ip_allocations = IpAllocations(self._http)
        self.vendors = Vendors(self._http)
        self.profiles = Profiles(self._http)
        self.purchase_requests = PurchaseRequests(self._http)
        self.purchase_orders = PurchaseOrders(self._http)
        self.procurement = Procurement(self._http)
        self.discovery = Discovery(self._http)
        self.users = Users(self._http)
        self.teams = Teams(self._http)
        self.projects = Projects(self._http)
        self.tokens = Tokens(self._http)
        self.change_requests = ChangeRequests(self._http)
        self.audit = Audit(self._http)
        self.flows = Flows(self._http)
        self.runs = Runs(self._http)
        self.pools = Pools(self._http)
        self.signals = Signals(self._http)

    @property
    def url(self) -> str:
        return self._http.url

    def region(self) -> RegionOut:
        """Which region the server serves (needs no token); asked whatever `region` says."""
        return parse(RegionOut, self._http.request("GET", "/v1/region", any_region=True).json())

    def whoami(self) -> WhoAmI:
        return self._http.get("/v1/whoami", WhoAmI)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<metalyard.sdk.Client {self.url}>"
