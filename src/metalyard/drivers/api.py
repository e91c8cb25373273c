"""BMC routes: credentials (admin only), and an asset's power, boot, firmware and sensors."""

from typing import Annotated

from fastapi import Depends, Path, Query, Request, status

from metalyard.api.deps import (
    ETaggedDep,
    PageDep,
    SessionDep,
    SettingsDep,
    VersionedDep,
    etag_responses,
    requires,
)
from metalyard.api.routing import secured_router
from metalyard.auth.scopes import Scope
from metalyard.drivers import service
from metalyard.drivers.base import Driver
from metalyard.drivers.schemas import (
    BmcCheckOut,
    BmcCredentialCreate,
    BmcCredentialOut,
    BmcCredentialUpdate,
    BootOut,
    BootRequest,
    FirmwareComponentOut,
    PowerOut,
    PowerRequest,
    SensorsOut,
    as_out,
)
from metalyard.schemas import ErrorBody, PageOut
from metalyard.secrets import Keyring

credentials = secured_router(prefix="/bmc-credentials", tags=["bmc credentials"])
bmc = secured_router(
    prefix="/assets",
    tags=["bmc"],
    responses={
        502: {"model": ErrorBody, "description": "The BMC refused or failed (its message)"},
        503: {"model": ErrorBody, "description": "The BMC is busy or unreachable: try later"},
    },
)
routers = [credentials, bmc]

CredentialName = Annotated[str, Path(max_length=128)]
SerialPath = Annotated[str, Path(max_length=64)]
SortQuery = Annotated[
    str, Query(max_length=32, description="Field to sort by; `-` for descending.")
]


def get_keyring(request: Request) -> Keyring:
    """One key ring per app, made on first use (it may create the key file)."""
    keyring = getattr(request.app.state, "keyring", None)
    if keyring is None:
        keyring = request.app.state.keyring = Keyring.from_settings(request.app.state.settings)
    return keyring


KeyringDep = Annotated[Keyring, Depends(get_keyring)]


def get_driver(
    serial: SerialPath, session: SessionDep, settings: SettingsDep, keyring: KeyringDep
) -> Driver:
    return service.asset_driver(session, serial=serial, keyring=keyring, settings=settings)


DriverDep = Annotated[Driver, Depends(get_driver)]


# Credentials ---------------------------------------------------------------------------


@credentials.get("", response_model=PageOut[BmcCredentialOut])
def list_credentials(session: SessionDep, page: PageDep, sort: SortQuery = "name"):
    return service.list_credentials(session, sort=sort, limit=page.limit, cursor=page.cursor)


@credentials.post(
    "",
    response_model=BmcCredentialOut,
    status_code=status.HTTP_201_CREATED,
    **requires(Scope.ADMIN),
    **etag_responses(201),
)
def create_credential(
    body: BmcCredentialCreate, session: SessionDep, keyring: KeyringDep, reply: ETaggedDep
):
    """Store a BMC login; the password is encrypted at rest and never returned."""
    return reply.answer(service.create_credential(session, data=body, keyring=keyring))


@credentials.get("/{name}", response_model=BmcCredentialOut, **etag_responses(200))
def get_credential(name: CredentialName, session: SessionDep, reply: ETaggedDep):
    return reply.answer(service.get_credential(session, name=name))


@credentials.patch(
    "/{name}", response_model=BmcCredentialOut, **requires(Scope.ADMIN), **etag_responses(200)
)
def update_credential(
    name: CredentialName,
    body: BmcCredentialUpdate,
    session: SessionDep,
    keyring: KeyringDep,
    change: VersionedDep,
):
    credential = service.update_credential(
        session, name=name, data=change.of(body), keyring=keyring
    )
    return change.answer(credential)


@credentials.delete("/{name}", status_code=status.HTTP_204_NO_CONTENT, **requires(Scope.ADMIN))
def delete_credential(name: CredentialName, session: SessionDep) -> None:
    service.delete_credential(session, name=name)


# An asset's BMC ------------------------------------------------------------------------


@bmc.get("/{serial}/power", response_model=PowerOut)
def get_power(driver: DriverDep):
    return PowerOut(state=driver.get_power_state())


@bmc.post("/{serial}/power", response_model=PowerOut, status_code=status.HTTP_202_ACCEPTED)
def set_power(body: PowerRequest, driver: DriverDep):
    """Ask the BMC for a power action; the answer is the state now (it may lag seconds)."""
    driver.set_power(body.action)
    return PowerOut(state=driver.get_power_state())


@bmc.get("/{serial}/boot", response_model=BootOut)
def get_boot(driver: DriverDep):
    return as_out(BootOut, driver.get_boot())


@bmc.put("/{serial}/boot", response_model=BootOut)
def set_boot(body: BootRequest, driver: DriverDep):
    """Boot from a device next time (or every time, with `persistent`)."""
    driver.set_boot(body.device, persistent=body.persistent, mode=body.mode)
    return as_out(BootOut, driver.get_boot())


@bmc.post("/{serial}/bmc/check", response_model=BmcCheckOut)
def check_bmc(driver: DriverDep):
    """Log in to the BMC and say what its driver can do (address and credentials check)."""
    return as_out(BmcCheckOut, service.check(driver))


@bmc.get("/{serial}/firmware", response_model=list[FirmwareComponentOut])
def list_firmware(driver: DriverDep):
    return [as_out(FirmwareComponentOut, c) for c in driver.list_firmware()]


@bmc.get("/{serial}/sensors", response_model=SensorsOut)
def get_sensors(driver: DriverDep):
    return as_out(SensorsOut, driver.get_health())
