"""The metalyard SDK: a typed httpx client of one region's REST API.

    from metalyard.sdk import Client, NotFound

    with Client("https://metalyard.dub1.example", token) as client:
        for asset in client.assets.list(state="SPARE", tag={"pool": "batch"}):
            print(asset.serial, asset.hostname)

Results are the API's own pydantic models (`AssetOut`, `SiteOut`, `RunOut`…); errors are the
`metalyard.errors` classes the server raised; `Unreachable` when no answer came, and its
`OutcomeUnknown` when a change was sent but its answer was lost, so it may have been carried
out. The SDK imports neither FastAPI nor SQLAlchemy.
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
)
from metalyard.sdk.auth import Audit, ChangeRequests, Projects, Teams, Tokens, Users
from metalyard.sdk.client import Client, RegionOut
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
]
