"""BMC credentials, and reaching an asset's BMC through its driver.

BMC calls take from milliseconds to tens of seconds, so `asset_driver` ends the caller's
transaction before returning the driver: no database lock is ever held across a BMC call.
"""

import ipaddress
import logging
import time
from dataclasses import dataclass
from typing import Any, NoReturn

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.orm import Session

from metalyard import drivers
from metalyard.config import Settings
from metalyard.db import Database
from metalyard.db.lookup import check_version, get_by
from metalyard.db.pagination import Page, paginate, parse_sort
from metalyard.drivers import destinations
from metalyard.drivers.base import BmcTarget, Driver, PowerState
from metalyard.drivers.models import BmcCredential
from metalyard.drivers.schemas import BmcCredentialCreate, BmcCredentialUpdate
from metalyard.errors import (
    AlreadyExists,
    Conflict,
    InvalidInput,
    MetalyardError,
    NoBmc,
    OutsideNetworks,
    Unsupported,
)
from metalyard.inventory.models import Asset
from metalyard.orchestrator.beans import Subject
from metalyard.secrets import Keyring

logger = logging.getLogger(__name__)

# Credentials ---------------------------------------------------------------------------


def create_credential(
    session: Session, *, data: BmcCredentialCreate, keyring: Keyring
) -> BmcCredential:
    if session.scalar(select(BmcCredential.id).where(BmcCredential.name == data.name)):
        raise AlreadyExists(f"a BMC credential named {data.name!r} already exists")
    credential = BmcCredential(
        name=data.name,
        username=data.username,
        password_encrypted=keyring.encrypt(data.password),
        networks=data.networks,
    )
    session.add(credential)
    session.flush()
    return credential


def get_credential(session: Session, *, name: str) -> BmcCredential:
    return get_by(session, BmcCredential, "BMC credential", name=name)


def list_credentials(
    session: Session, *, sort: str, limit: int, cursor: str | None
) -> Page[BmcCredential]:
    key = parse_sort(sort, {"name": BmcCredential.name, "created_at": BmcCredential.created_at})
    return paginate(
        session,
        select(BmcCredential),
        id_column=BmcCredential.id,
        sort=key,
        limit=limit,
        cursor=cursor,
    )


def update_credential(
    session: Session, *, name: str, data: BmcCredentialUpdate, keyring: Keyring
) -> BmcCredential:
    credential = get_by(session, BmcCredential, "BMC credential", for_update=True, name=name)
    check_version(credential, data.version, f"BMC credential {name!r}")
    if data.username is not None:
        credential.username = data.username
    if data.password is not None:
        credential.password_encrypted = keyring.encrypt(data.password)
    if data.networks is not None:
        credential.networks = data.networks
    session.flush()
    return credential


def delete_credential(session: Session, *, name: str) -> None:
    credential = get_by(session, BmcCredential, "BMC credential", for_update=True, name=name)
    users = session.scalar(select(func.count()).where(Asset.bmc_credential == name))
    if users:
        raise Conflict(
            f"BMC credential {name!r} is used by {users} asset(s); point them elsewhere first"
        )
    session.delete(credential)


def rotate_key(session: Session, *, keyring: Keyring) -> int:
    """Re-encrypt every stored secret with the key ring's first key; how many."""
    rows = session.execute(select(BmcCredential.id, BmcCredential.password_encrypted)).all()
    if rows:
        table = BmcCredential.__table__
        # Through the connection: an ORM bulk update would want each row's version.
        session.connection().execute(
            update(table)
            .where(table.c.id == bindparam("ident"))
            .values(password_encrypted=bindparam("token")),
            [{"ident": ident, "token": keyring.rotate(token)} for ident, token in rows],
        )
    return len(rows)


# Reaching a BMC ------------------------------------------------------------------------


@dataclass(frozen=True)
class AssetBmc:
    """An asset's BMC target, and the name of the credential it carries (if any)."""

    serial: str
    target: BmcTarget
    credential: str

    def connect(self) -> Driver:
        """A driver for the BMC, once the host the address names, and every address it
        resolves to, is inside the credential's networks; the driver then checks every
        connection it opens (see destinations). Call it outside any transaction: the host
        may need a DNS lookup."""
        networks = self.target.networks
        if networks is not None:
            host = drivers.driver_class(self.target.driver).host(self.target.address)
            refused = destinations.outside(destinations.resolve(host), networks)
            if refused:
                self._refuse(host, refused, networks)
        return drivers.connect(self.target)

    def _refuse(self, host: str, refused: list[str], networks: tuple[str, ...]) -> NoReturn:
        where = f"{host} ({', '.join(refused)})" if refused != [host] else host
        logger.warning(
            "refused to send BMC credential %r to %s for asset %s: outside %s",
            self.credential, where, self.serial, ", ".join(networks),
        )  # fmt: skip
        raise OutsideNetworks(
            f"asset {self.serial!r}'s BMC address {where} is outside the networks BMC "
            f"credential {self.credential!r} may be sent into ({', '.join(networks)}); "
            f"an admin can widen them with "
            f"`metalyard bmc-credential update {self.credential} --network …`",
            details={"credential": self.credential, "outside": refused},
        )


def bmc_problem(asset: Asset) -> MetalyardError | None:
    """What keeps a BMC call from reaching the asset as recorded, as the error the call
    raises: no driver or address (NoBmc), or no credential where the driver needs one. None
    once nothing is missing (the address and login may still prove wrong)."""
    if asset.bmc_driver == "fake":  # reaches machines in this process: needs neither
        return None
    fields = {
        "bmc_driver": asset.bmc_driver,
        "bmc_address": asset.bmc_address,
        "bmc_credential": asset.bmc_credential,
    }
    missing = [name for name, value in fields.items() if not value]
    if not missing:
        return None
    serial = asset.serial
    options = " ".join(f"--{name.replace('_', '-')} …" for name in missing)
    fix = f"`metalyard asset update {serial} {options}`"
    if missing == ["bmc_credential"]:
        return InvalidInput(
            f"asset {serial!r} has no BMC credential; set one with {fix}",
            details={"field": "bmc_credential"},
        )
    named = [name.removeprefix("bmc_") for name in missing]
    what = ", ".join(named[:-1]) + f" or {named[-1]}" if len(named) > 1 else named[0]
    return NoBmc(
        f"asset {serial!r} has no BMC {what} on record, so no BMC call can reach it; "
        f"set {'them' if len(named) > 1 else 'it'} with {fix}",
        details={"serial": serial, "missing": missing},
    )


def asset_bmc(session: Session, *, serial: str, keyring: Keyring, settings: Settings) -> AssetBmc:
    """Where the asset's BMC answers and how to log in, from the asset and its credential."""
    asset = get_by(session, Asset, "asset", serial=serial)
    problem = bmc_problem(asset)
    if problem is not None:
        raise problem
    return _bmc_of(session, asset, keyring, settings)


def _bmc_of(session: Session, asset: Asset, keyring: Keyring, settings: Settings) -> AssetBmc:
    username = password = ""
    networks = None
    if asset.bmc_credential:
        credential = get_by(session, BmcCredential, "BMC credential", name=asset.bmc_credential)
        username, password = credential.username, keyring.decrypt(credential.password_encrypted)
        networks = tuple(credential.networks)
    target = BmcTarget(
        driver=asset.bmc_driver,
        address=asset.bmc_address or asset.serial,
        username=username,
        password=password,
        verify=str(settings.bmc_ca_bundle) if settings.bmc_ca_bundle else settings.bmc_verify_tls,
        networks=networks,
    )
    return AssetBmc(asset.serial, target, asset.bmc_credential)


def address_at(driver: str, ip: str) -> str:
    """The address by which `driver` reaches a BMC at `ip` (for Redfish, the endpoint's only
    system)."""
    if driver == "redfish":
        return f"https://[{ip}]" if ":" in ip else f"https://{ip}"
    return ip


def address_ip(driver: str | None, address: str) -> str | None:
    """The IP address a recorded BMC address connects to; None for a DNS name (not resolved
    here), for the fake driver (no network) or for no address."""
    if driver in (None, "fake") or not address:
        return None
    try:
        return str(ipaddress.ip_address(drivers.driver_class(driver).host(address)))
    except (InvalidInput, ValueError):
        return None


def asset_driver(session: Session, *, serial: str, keyring: Keyring, settings: Settings) -> Driver:
    bmc = asset_bmc(session, serial=serial, keyring=keyring, settings=settings)
    session.commit()  # release the transaction before the BMC call (see module docstring)
    return bmc.connect()


@dataclass(frozen=True)
class BmcCheck:
    driver: str
    address: str
    capabilities: list[drivers.Capability]
    power_state: PowerState | None
    elapsed_ms: float


def check(driver: Driver) -> BmcCheck:
    """Validate address and credentials, and say what the driver can do."""
    started = time.perf_counter()
    driver.validate()
    capabilities = sorted(driver.capabilities())
    power = driver.get_power_state() if drivers.Capability.POWER in capabilities else None
    return BmcCheck(
        driver=driver.name,
        address=driver.target.address,
        capabilities=capabilities,
        power_state=power,
        elapsed_ms=round((time.perf_counter() - started) * 1000, 1),
    )


class BmcNotSet(Driver):
    """A bean's driver for an asset whose BMC record is incomplete (see bmc_problem): it
    can do nothing, and says why, so a bean may skip with that reason; any call raises it."""

    name = "none"

    def __init__(self, target: BmcTarget, problem: MetalyardError) -> None:
        super().__init__(target)
        self.problem = problem

    def validate(self) -> None:
        raise self.problem.with_traceback(None)

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except Unsupported:
            raise self.problem.with_traceback(None) from None


class SubjectDrivers:
    """The worker's seam to BMCs: the driver of a run's subject (`asset:SERIAL`), or a
    BmcNotSet that says what the asset's record lacks."""

    def __init__(self, database: Database, settings: Settings) -> None:
        self._database = database
        self._settings = settings
        self._keyring: Keyring | None = None

    def __call__(self, subject: Subject) -> Driver:
        if subject.kind != "asset":
            raise LookupError(f"only assets have BMCs, not {subject}")
        if self._keyring is None:
            self._keyring = Keyring.from_settings(self._settings)
        with self._database.transaction(write=False) as session:
            asset = get_by(session, Asset, "asset", serial=subject.id)
            problem = bmc_problem(asset)
            if problem is not None:
                target = BmcTarget(driver=asset.bmc_driver or "", address=asset.bmc_address)
                return BmcNotSet(target, problem)
            bmc = _bmc_of(session, asset, self._keyring, self._settings)
        return bmc.connect()
