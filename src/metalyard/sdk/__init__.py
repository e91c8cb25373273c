"""The metalyard SDK: a typed httpx client of one region's REST API.

    from metalyard.sdk import Client, NotFound

    with Client("https://metalyard.dub1.example", token, region="dub1") as client:
        for asset in client.assets.list(state="SPARE", tag={"pool": "batch"}):
            print(asset.serial, asset.hostname)

A `list()` fetches page after page as you iterate; `limit` stops after that many items,
`cursor` starts after an earlier listing's `next_cursor`, which it keeps too (None once
no more exist):

    page = client.assets.list(state="SPARE", limit=500)
    serials = [asset.serial for asset in page]
    more = client.assets.list(state="SPARE", limit=500, cursor=page.next_cursor)

Results are the API's own pydantic models (`AssetOut`, `SiteOut`, `RunOut`…); errors are the
`metalyard.errors` classes the server raised; `Unreachable` when no answer came, and its
`OutcomeUnknown` when a change was sent but its answer was lost, so it may have been carried
out; `WrongRegion` when a client given `region` reached a server of another region, which
then did nothing. The SDK imports neither FastAPI nor SQLAlchemy.
"""

from metalyard.errors import (
    AlreadyExists,
    Conflict,
    Forbidden,
    ForbiddenTransition,
    InvalidInput,
    MetalyardError,
    NotFound,
    OutcomeUnknown,
    PayloadTooLarge,
    ServerError,
    StaleVersion,
    Unauthenticated,
    Unreachable,
    WrongRegion,
)
from metalyard.sdk.auth import Audit, ChangeRequests, Projects, Teams, Tokens, Users
from metalyard.sdk.client import Client, RegionOut
from metalyard.sdk.http import Listing
from metalyard.sdk.inventory import Assets, MachineClasses, Racks, Sites
from metalyard.sdk.orchestrator import Flows, Pools, Runs, Signals

__all__ = [
    "AlreadyExists",
    "Assets",
    "Audit",
    "ChangeRequests",
    "Client",
    "Conflict",
    "Flows",
    "Forbidden",
    "ForbiddenTransition",
    "InvalidInput",
    "Listing",
    "MachineClasses",
    "MetalyardError",
    "NotFound",
    "OutcomeUnknown",
    "PayloadTooLarge",
    "Pools",
    "Projects",
    "Racks",
    "RegionOut",
    "Runs",
    "ServerError",
    "Signals",
    "Sites",
    "StaleVersion",
    "Teams",
    "Tokens",
    "Unauthenticated",
    "Unreachable",
    "Users",
    "WrongRegion",
]
