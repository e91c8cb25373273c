"""The FastAPI application: one per process, stateless apart from its database."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

import metalyard
from metalyard import startup
from metalyard.api import errors
from metalyard.api.deps import SettingsDep
from metalyard.api.middleware import BodyLimitMiddleware, RequestIdMiddleware
from metalyard.api.routing import add_routes, open_router
from metalyard.auth import api as auth_api
from metalyard.auth.audit import api as audit_api
from metalyard.auth.changes import api as changes_api
from metalyard.config import Settings
from metalyard.db import Database
from metalyard.discovery import api as discovery_api
from metalyard.drivers import api as drivers_api
from metalyard.drivers import release_sessions
from metalyard.errors import MetalyardError
from metalyard.inventory import api as inventory_api
from metalyard.network import api as network_api
from metalyard.orchestrator import api as orchestrator_api
from metalyard.procurement import api as procurement_api
from metalyard.schemas import RegionOut


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield
    release_sessions()  # BMCs have few session slots: give ours back


def create_app(settings: Settings, database: Database | None = None) -> FastAPI:
    # Swagger UI and ReDoc served from this process, not a CDN: a management network is
    # often offline.
    app = FastAPIOffline(
        static_url="/docs/static",
        lifespan=_lifespan,
        title="metalyard",
        version=metalyard.__version__,
        summary="Control plane for fleets of physical servers, one region per deployment.",
        description=(
            f"Limits: request bodies up to {settings.max_request_bytes} bytes (413 above); "
            "pages of up to 1000 items; string and list limits are in each schema (422 above)."
        ),
    )
    app.state.settings = settings
    app.state.database = database or Database(settings.effective_database_url)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_request_bytes)
    app.add_middleware(RequestIdMiddleware)
    errors.install(app)

    region = open_router(tags=["region"])

    @region.get("/region", response_model=RegionOut)
    def get_region(settings: SettingsDep) -> RegionOut:
        """Which region this deployment serves (no token needed)."""
        return RegionOut(name=settings.region, version=metalyard.__version__)

    add_routes(app, region)
    for module in (
        inventory_api,
        drivers_api,
        network_api,
        procurement_api,
        discovery_api,
        orchestrator_api,
        auth_api,
        changes_api,
        audit_api,
    ):
        for router in module.routers:
            add_routes(app, router)
    add_routes(app, network_api.boot)  # iPXE asks at /boot/ipxe, without a token
    return app


def app_from_environment() -> FastAPI:
    """For process managers: `uvicorn --factory metalyard.api.app:app_from_environment`.

    Starts as `metalyard serve` does, without the embedded worker: settings and secret key
    checked, schema current; a problem ends the process with its message, not a traceback.
    """
    try:
        settings = startup.load_settings()
        startup.load_flows(settings.flow_modules)
        database = startup.open_database(settings, claim=True)
    except MetalyardError as error:
        raise SystemExit(f"metalyard: {error.message}") from None
    return create_app(settings, database)
