"""Redfish through sushy: one cached session per BMC endpoint and credential.

BMCs allow few sessions (often 4 to 16), so a session is made once per endpoint and user
and reused by every call and thread until it idles out or the process closes it (logout).
An asset's address is the endpoint's base URL plus its system's path, so one endpoint (a
chassis manager, an emulator) can serve many systems over one session.
"""

import hashlib
import logging
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit

import sushy
from requests.adapters import HTTPAdapter
from sushy import auth as sushy_auth
from sushy import exceptions as sushy_errors
from sushy.connector import Connector
from urllib3 import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.connection import HTTPConnection, HTTPSConnection

from metalyard.drivers.base import (
    Bios,
    BmcTarget,
    Boot,
    BootDevice,
    BootMode,
    BootSetting,
    Driver,
    EventLog,
    EventLogEntry,
    Firmware,
    FirmwareComponent,
    HardwareInventory,
    Health,
    HealthReport,
    HealthStatus,
    Inventory,
    Nic,
    Power,
    PowerAction,
    PowerState,
    SensorReading,
    UpdateState,
    UpdateStatus,
)
from metalyard.drivers.destinations import check_peer, checked_host
from metalyard.errors import (
    BmcAuthFailed,
    BmcFatal,
    BmcTransient,
    InvalidInput,
    OutsideNetworks,
    Unsupported,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

SYSTEMS_PREFIX = "/redfish/v1/Systems/"
IDLE_SECONDS = 300.0
"""A session unused this long is logged out (BMCs expire them anyway, often after 30 min)."""
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 30.0
GET_RETRIES = 3
"""sushy retries GETs on 5xx and connection errors this often, GET_RETRY_DELAY apart."""
GET_RETRY_DELAY = 0.5
POOL_SIZE = 32
"""Open connections kept per endpoint, for concurrent calls to systems behind it."""

_POWER_STATES = {
    sushy.PowerState.ON: PowerState.ON,
    sushy.PowerState.POWERING_OFF: PowerState.ON,
    sushy.PowerState.OFF: PowerState.OFF,
    sushy.PowerState.POWERING_ON: PowerState.OFF,
}
_RESETS = {
    PowerAction.ON: sushy.ResetType.ON,
    PowerAction.OFF: sushy.ResetType.FORCE_OFF,
    PowerAction.SOFT_OFF: sushy.ResetType.GRACEFUL_SHUTDOWN,
    PowerAction.CYCLE: sushy.ResetType.POWER_CYCLE,
    PowerAction.RESET: sushy.ResetType.FORCE_RESTART,
}
_BOOT_SOURCES = {
    BootDevice.PXE: sushy.BootSource.PXE,
    BootDevice.DISK: sushy.BootSource.HDD,
    BootDevice.CD: sushy.BootSource.CD,
}
_BOOT_MODES = {
    BootMode.UEFI: sushy.BootSourceOverrideMode.UEFI,
    BootMode.LEGACY: sushy.BootSourceOverrideMode.LEGACY,
}
_HEALTH = {
    "OK": HealthStatus.OK,
    "Warning": HealthStatus.WARNING,
    "Critical": HealthStatus.CRITICAL,
}


_AUTHORITY = re.compile(r"^(?P<host>\[[^\]]*\]|[^:\[\]]*)(?::(?P<port>\d{1,5}))?$")


def split_address(address: str) -> tuple[str, str | None]:
    """(base URL, system path or None for the endpoint's only system)."""
    parts = urlsplit(address)
    authority = _AUTHORITY.match(parts.netloc)
    if parts.scheme not in ("http", "https") or not authority:
        raise InvalidInput(
            f"a Redfish BMC address is a URL such as https://10.0.0.5{SYSTEMS_PREFIX}1, "
            f"not {address!r}"
        )
    host, port = checked_host(authority["host"], address), authority["port"]
    if port and not 0 < int(port) < 65536:
        raise InvalidInput(f"BMC address {address!r} has no valid port")
    path = parts.path.rstrip("/")
    if path and not path.startswith(SYSTEMS_PREFIX):
        raise InvalidInput(f"a Redfish system path starts with {SYSTEMS_PREFIX}, not {path!r}")
    netloc = (f"[{host}]" if ":" in host else host) + (f":{port}" if port else "")
    return f"{parts.scheme}://{netloc}", path or None


# Sessions ------------------------------------------------------------------------------


class _SessionAuth(sushy_auth.SessionOrBasicAuth):
    """sushy's session-or-basic auth, except that a full session table is reported, not
    papered over with basic auth: the cache logs out idle sessions and tries again."""

    def _do_authenticate(self) -> None:
        try:
            sushy_auth.SessionAuth._do_authenticate(self)
        except sushy_errors.HTTPError as error:
            if _is_session_limit(error):
                raise
            if not self._session_auth_previously_successful:
                # No SessionService, or it refused us: basic auth says which with its 401.
                self._fallback_to_basic_authentication()
            else:
                raise


def _is_session_limit(error: sushy_errors.HTTPError) -> bool:
    text = f"{error.code} {error.detail}".lower()
    return "sessionlimitexceeded" in text or ("session" in text and "maximum" in text)


@dataclass
class _Session:
    root: sushy.Sushy
    users: int = 0
    last_used: float = 0.0


class SessionCache:
    """Open Redfish sessions by (endpoint, user, password, TLS, networks), shared by all
    threads: narrowing a credential's networks makes the next call log in anew."""

    def __init__(self, idle_seconds: float = IDLE_SECONDS) -> None:
        self._sessions: dict[tuple[str, ...], _Session] = {}
        self._lock = threading.Lock()
        self._idle_seconds = idle_seconds

    @contextmanager
    def root(self, target: BmcTarget, base_url: str) -> Iterator[sushy.Sushy]:
        key = (
            base_url,
            target.username,
            hashlib.sha256(target.password.encode()).hexdigest(),
            str(target.verify),
            str(target.networks),
        )
        session = self._checkout(key, target, base_url)
        try:
            yield session.root
        finally:
            with self._lock:
                session.users -= 1
                session.last_used = time.monotonic()

    def _checkout(self, key: tuple[str, ...], target: BmcTarget, base_url: str):
        self._close_idle()
        with self._lock:
            session = self._sessions.get(key)
            if session is not None:
                session.users += 1
                return session
        root = self._login(target, base_url)
        with self._lock:
            session = self._sessions.get(key)
            if session is None:
                session = self._sessions[key] = _Session(root)
            else:  # another thread logged in meanwhile: keep one session
                _logout(root)
            session.users += 1
            return session

    def _login(self, target: BmcTarget, base_url: str) -> sushy.Sushy:
        for attempt in range(2):
            try:
                return _connect(target, base_url)
            except sushy_errors.HTTPError as error:
                if not _is_session_limit(error):
                    raise
                if attempt == 0 and self.logout_idle(base_url):
                    log.info("%s has no free session: logged out our idle ones", base_url)
                    continue
                raise BmcTransient(
                    f"BMC {base_url} has no free session ({error.detail}); try again later"
                ) from None
        raise AssertionError("unreachable")

    def logout_idle(self, base_url: str | None = None) -> int:
        """Log out sessions no call is using (on `base_url`, or everywhere); how many."""
        with self._lock:
            idle = [
                key
                for key, session in self._sessions.items()
                if session.users == 0 and (base_url is None or key[0] == base_url)
            ]
            roots = [self._sessions.pop(key).root for key in idle]
        for root in roots:
            _logout(root)
        return len(roots)

    def _close_idle(self) -> None:
        deadline = time.monotonic() - self._idle_seconds
        with self._lock:
            stale = [
                key
                for key, session in self._sessions.items()
                if session.users == 0 and session.last_used < deadline
            ]
            roots = [self._sessions.pop(key).root for key in stale]
        for root in roots:
            _logout(root)

    def __len__(self) -> int:
        return len(self._sessions)


def _connect(target: BmcTarget, base_url: str) -> sushy.Sushy:
    connector = Connector(
        base_url,
        verify=target.verify,
        server_side_retries=GET_RETRIES,
        server_side_retries_delay=GET_RETRY_DELAY,
        default_request_timeout=READ_TIMEOUT,
        connect_timeout=CONNECT_TIMEOUT,
    )
    # sushy asks BMCs to close every connection; we keep them for reuse, in a pool sized for
    # the concurrent calls one endpoint gets.
    http = connector._session
    http.headers.pop("Connection", None)
    http.trust_env = False  # a BMC is reached directly, never through a proxy from the env
    adapter = _adapter(target.networks)
    http.mount("http://", adapter)
    http.mount("https://", adapter)
    return sushy.Sushy(
        base_url,
        auth=_SessionAuth(username=target.username, password=target.password),
        connector=connector,
    )


def _adapter(networks: tuple[str, ...] | None) -> HTTPAdapter:
    if networks is None:
        return HTTPAdapter(pool_connections=1, pool_maxsize=POOL_SIZE)
    return _GuardedAdapter(networks, pool_connections=1, pool_maxsize=POOL_SIZE)


class _GuardedAdapter(HTTPAdapter):
    """Connection pools whose every connection checks the address it reached before it
    sends a byte, wherever a redirect or a link in a BMC's answer led it."""

    def __init__(self, networks: tuple[str, ...], **kwargs: Any) -> None:
        self._pools = {
            "http": _guarded_pool(HTTPConnectionPool, HTTPConnection, networks),
            "https": _guarded_pool(HTTPSConnectionPool, HTTPSConnection, networks),
        }
        super().__init__(**kwargs)  # makes the pool manager: the pools must be known

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = self._pools


def _guarded_pool(pool: type, connection: type, networks: tuple[str, ...]) -> type:
    def _new_conn(self: HTTPConnection) -> socket.socket:
        sock = connection._new_conn(self)
        try:
            check_peer(sock.getpeername()[0], networks)
        except OutsideNetworks:
            sock.close()
            raise
        return sock

    guarded = type(f"Guarded{connection.__name__}", (connection,), {"_new_conn": _new_conn})
    return type(f"Guarded{pool.__name__}", (pool,), {"ConnectionCls": guarded})


def _logout(root: sushy.Sushy) -> None:
    try:
        root._auth.close()  # sushy's own logout; it does this only when garbage-collected
    except (sushy_errors.SushyError, OSError) as error:
        log.warning("logging out of a Redfish session failed: %s", error)
    finally:
        root._auth = None


SESSIONS = SessionCache()


# The driver ----------------------------------------------------------------------------


def _translate(address: str, call: Callable[[], T]) -> T:
    """Run a sushy call, mapping its errors to ours with the BMC's own message."""
    try:
        return call()
    except sushy_errors.AccessError as error:
        raise BmcAuthFailed(
            f"BMC {address} refused the credentials or the request: {error.detail or error}"
        ) from None
    except sushy_errors.ResourceNotFoundError:
        raise BmcFatal(f"BMC {address} has no such resource: check the system path") from None
    except sushy_errors.ServerSideError as error:
        raise BmcTransient(f"BMC {address} failed: {error.detail or error}") from None
    except sushy_errors.HTTPError as error:
        if error.status_code in (429, 503) or _is_session_limit(error):
            raise BmcTransient(f"BMC {address} is busy: {error.detail or error}") from None
        raise BmcFatal(f"BMC {address} refused the request: {error.detail or error}") from None
    except sushy_errors.ConnectionError as error:
        if "CERTIFICATE_VERIFY_FAILED" in str(error) or "SSLError" in str(error):
            raise BmcFatal(
                f"BMC {address} failed TLS verification ({_reason(error)}); give its CA with "
                "METALYARD_BMC_CA_BUNDLE, or set METALYARD_BMC_VERIFY_TLS=false"
            ) from None
        raise BmcTransient(f"BMC {address} cannot be reached: {_reason(error)}") from None
    except (sushy_errors.MissingAttributeError, sushy_errors.MalformedAttributeError) as error:
        raise BmcFatal(f"BMC {address} answered something malformed: {error}") from None
    except sushy_errors.MissingActionError as error:
        raise Unsupported(f"BMC {address} does not offer this: {error}") from None
    except sushy_errors.InvalidParameterValueError as error:
        raise Unsupported(f"BMC {address} does not accept this: {error}") from None
    except (sushy_errors.SushyError, ValueError) as error:
        raise BmcFatal(f"BMC {address}: {error}") from None
    except (AttributeError, TypeError) as error:
        if not _failed_in_sushy_errors(error):
            raise
        raise BmcFatal(
            f"BMC {address} answered with an error body Redfish does not allow ({error})"
        ) from None


def _failed_in_sushy_errors(error: BaseException) -> bool:
    """Whether sushy itself failed reading a BMC's error answer: some BMCs send bodies
    such as {"error": "text"}, where Redfish has an object."""
    trace = error.__traceback__
    while trace is not None and trace.tb_next is not None:
        trace = trace.tb_next
    return trace is not None and trace.tb_frame.f_code.co_filename == sushy_errors.__file__


def _reason(error: sushy_errors.ConnectionError) -> str:
    text = str(error)
    return text.split("Error: ", 1)[-1] if "Error: " in text else text


class RedfishDriver(Driver, Power, Boot, Inventory, Firmware, Bios, Health, EventLog):
    name = "redfish"

    def __init__(self, target: BmcTarget, sessions: SessionCache = SESSIONS) -> None:
        super().__init__(target)
        self._base_url, self._system_path = split_address(target.address)
        self._sessions = sessions

    @classmethod
    def host(cls, address: str) -> str:
        return urlsplit(split_address(address)[0]).hostname or ""

    def _call(self, work: Callable[[sushy.Sushy], T]) -> T:
        def attempt() -> T:
            with self._sessions.root(self.target, self._base_url) as root:
                return work(root)

        return _translate(self.target.address, attempt)

    def _system(self, root: sushy.Sushy):
        return root.get_system(self._system_path)

    def validate(self) -> None:
        self._call(lambda root: self._system(root).power_state)

    # Power --------------------------------------------------------------------------

    def get_power_state(self) -> PowerState:
        state = self._call(lambda root: self._system(root).power_state)
        if state not in _POWER_STATES:
            raise BmcFatal(f"BMC {self.target.address} reports power state {state}")
        return _POWER_STATES[state]

    def set_power(self, action: PowerAction) -> None:
        def work(root: sushy.Sushy) -> None:
            system = self._system(root)
            now = _POWER_STATES.get(system.power_state)
            if (action is PowerAction.ON and now is PowerState.ON) or (
                action in (PowerAction.OFF, PowerAction.SOFT_OFF) and now is PowerState.OFF
            ):
                return
            reset = _RESETS[action]
            if reset not in system.get_allowed_reset_system_values():
                if action is not PowerAction.CYCLE:
                    raise Unsupported(f"BMC {self.target.address} cannot {action.value}")
                reset = sushy.ResetType.FORCE_RESTART  # the closest a BMC without it offers
            system.reset_system(reset)

        self._call(work)

    # Boot ---------------------------------------------------------------------------

    def get_boot(self) -> BootSetting:
        boot = self._call(lambda root: self._system(root).boot)
        devices = {source: device for device, source in _BOOT_SOURCES.items()}
        modes = {mode: ours for ours, mode in _BOOT_MODES.items()}
        enabled = boot.enabled
        overridden = enabled in (
            sushy.BootSourceOverrideEnabled.ONCE,
            sushy.BootSourceOverrideEnabled.CONTINUOUS,
        )
        return BootSetting(
            device=devices.get(boot.target) if overridden else None,
            persistent=enabled is sushy.BootSourceOverrideEnabled.CONTINUOUS,
            mode=modes.get(boot.mode),
        )

    def set_boot(
        self, device: BootDevice, *, persistent: bool = False, mode: BootMode | None = None
    ) -> None:
        enabled = (
            sushy.BootSourceOverrideEnabled.CONTINUOUS
            if persistent
            else sushy.BootSourceOverrideEnabled.ONCE
        )
        self._call(
            lambda root: self._system(root).set_system_boot_options(
                target=_BOOT_SOURCES[device],
                enabled=enabled,
                mode=_BOOT_MODES[mode] if mode else None,
            )
        )

    # Inventory ----------------------------------------------------------------------

    def get_inventory(self) -> HardwareInventory:
        def work(root: sushy.Sushy) -> HardwareInventory:
            system = self._system(root)
            cpus = _optional(lambda: system.processors.get_members()) or []
            nics = _optional(lambda: system.ethernet_interfaces.get_members()) or []
            memory = system.memory_summary
            return HardwareInventory(
                manufacturer=system.manufacturer,
                model=system.model,
                serial=system.serial_number,
                cpu_count=(system.processors.summary.count if cpus else None),
                cpu_model=(cpus[0].model if cpus else None),
                memory_gib=(memory.size_gib if memory else None),
                nics=[
                    Nic(
                        name=nic.identity,
                        mac=(nic.mac_address or "").lower(),
                        speed_mbps=nic.speed_mbps,
                    )
                    for nic in nics
                ],
            )

        return self._call(work)

    # Firmware -----------------------------------------------------------------------

    def list_firmware(self) -> list[FirmwareComponent]:
        def work(root: sushy.Sushy) -> list[FirmwareComponent]:
            system = self._system(root)
            found: dict[str, FirmwareComponent] = {}
            if system.bios_version:
                found["bios"] = FirmwareComponent("bios", system.bios_version)
            for manager in _optional(lambda: system.managers) or []:
                if manager.firmware_version:
                    found.setdefault("bmc", FirmwareComponent("bmc", manager.firmware_version))
            inventory = _optional(lambda: root.get_update_service().firmware_inventory)
            for item in inventory.get_members() if inventory else []:
                if item.version:
                    name = item.identity.lower()
                    found.setdefault(
                        name, FirmwareComponent(name, item.version, bool(item.updateable))
                    )
            return list(found.values())

        return self._call(work)

    def start_update(self, image_url: str, *, components: list[str] | None = None) -> str:
        def work(root: sushy.Sushy) -> str:
            system = self._system(root)
            targets = components or [system.path]
            monitor = root.get_update_service().simple_update(image_url, targets=targets)
            return monitor.task_monitor_uri

        return self._call(work)

    def poll_update(self, handle: str) -> UpdateStatus:
        def work(root: sushy.Sushy) -> UpdateStatus:
            monitor = root.get_task_monitor(handle)
            if monitor.is_processing:
                task = monitor.task
                percent = task.percent_complete if task else None
                return UpdateStatus(UpdateState.RUNNING, percent, "flashing")
            task = _optional(monitor.get_task)
            if task is None:  # the monitor answered the finished operation, not a task
                return UpdateStatus(UpdateState.COMPLETED, 100, "update completed")
            state = task.task_state
            if state in (sushy.TaskState.COMPLETED,) and task.task_status in (
                None,
                sushy.Health.OK,
            ):
                return UpdateStatus(UpdateState.COMPLETED, 100, "update completed")
            if state in (
                sushy.TaskState.EXCEPTION,
                sushy.TaskState.KILLED,
                sushy.TaskState.CANCELLED,
            ):
                messages = "; ".join(m.message or "" for m in task.messages or [])
                return UpdateStatus(
                    UpdateState.FAILED, task.percent_complete, messages or str(state)
                )
            return UpdateStatus(UpdateState.RUNNING, task.percent_complete, str(state.value))

        return self._call(work)

    # BIOS ---------------------------------------------------------------------------

    def get_bios(self) -> dict[str, Any]:
        return self._call(lambda root: dict(self._bios(root).attributes))

    def set_bios(self, attributes: dict[str, Any]) -> None:
        self._call(lambda root: self._bios(root).set_attributes(attributes))

    def _bios(self, root: sushy.Sushy):
        try:
            return self._system(root).bios
        except sushy_errors.MissingAttributeError:
            raise Unsupported(f"BMC {self.target.address} has no BIOS resource") from None

    # Health -------------------------------------------------------------------------

    def get_health(self) -> HealthReport:
        def work(root: sushy.Sushy) -> HealthReport:
            system = self._system(root)
            sensors: list[SensorReading] = []
            for chassis in _optional(lambda: system.chassis) or []:
                sensors += _thermal_readings(_optional(lambda c=chassis: c.thermal))
                sensors += _power_readings(_optional(lambda c=chassis: c.power))
            overall = _HEALTH.get(_value(system.status.health if system.status else None))
            return HealthReport(overall=overall or HealthStatus.UNKNOWN, sensors=sensors)

        return self._call(work)

    # Event log (sushy does not model LogService: read it through sushy's connector) -------

    def _entries_path(self, root: sushy.Sushy) -> str:
        system = self._system(root)
        services = root._conn.get(f"{system.path}/LogServices").json()
        members = services.get("Members") or []
        if not members:
            raise Unsupported(f"BMC {self.target.address} offers no event log")
        return members[0]["@odata.id"].rstrip("/")

    def read_event_log(self) -> list[EventLogEntry]:
        def work(root: sushy.Sushy) -> list[EventLogEntry]:
            entries = root._conn.get(f"{self._entries_path(root)}/Entries").json()
            return [
                EventLogEntry(
                    id=str(entry.get("Id", "")),
                    created=_parse_time(entry.get("Created")),
                    severity=str(entry.get("Severity", "")),
                    message=str(entry.get("Message", "")),
                )
                for entry in entries.get("Members") or []
            ]

        return self._call(self._log_service(work))

    def clear_event_log(self) -> None:
        def work(root: sushy.Sushy) -> None:
            path = self._entries_path(root)
            root._conn.post(f"{path}/Actions/LogService.ClearLog", data={})

        self._call(self._log_service(work))

    def _log_service(self, work: Callable[[sushy.Sushy], T]) -> Callable[[sushy.Sushy], T]:
        def guarded(root: sushy.Sushy) -> T:
            try:
                return work(root)
            except sushy_errors.ResourceNotFoundError:
                raise Unsupported(f"BMC {self.target.address} offers no event log") from None

        return guarded


def _optional(read: Callable[[], T]) -> T | None:
    """A resource a BMC may not have: None when it answers that it has none."""
    try:
        return read()
    except (sushy_errors.MissingAttributeError, sushy_errors.ResourceNotFoundError):
        return None


def _value(member: Any) -> str | None:
    return getattr(member, "value", member)


def _thermal_readings(thermal: Any) -> list[SensorReading]:
    if thermal is None:
        return []
    readings = [
        SensorReading(
            "temperature",
            t.name or t.identity,
            t.reading_celsius,
            "Cel",
            _sensor_status(t.status),
        )
        for t in thermal.temperatures or []
    ]
    readings += [
        SensorReading(
            "fan",
            f.name or f.identity,
            f.reading,
            _value(f.reading_units) or "",
            _sensor_status(f.status),
        )
        for f in thermal.fans or []
    ]
    return readings


def _power_readings(power: Any) -> list[SensorReading]:
    if power is None:
        return []
    return [
        SensorReading(
            "power_supply",
            p.name or p.identity,
            p.last_power_output_watts,
            "W",
            _sensor_status(p.status),
        )
        for p in power.power_supplies or []
    ]


def _sensor_status(status: Any) -> HealthStatus:
    return _HEALTH.get(_value(getattr(status, "health", None)) or "", HealthStatus.UNKNOWN)


def _parse_time(text: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(text)) if text else None
    except ValueError:
        return None
