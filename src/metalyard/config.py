"""Settings of one deployment (one region), from the environment or a file."""

import ipaddress
import json
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from metalyard.auth.changes.actions import ACTIONS as CHANGE_ACTIONS

BUILTIN_FLOW_MODULES = ("metalyard.procurement.flows", "metalyard.discovery.flows")
"""Flows of the built-in concepts, which every worker runs."""


class Settings(BaseSettings):
    """Every deployment serves exactly one region and shares nothing with the others."""

    model_config = SettingsConfigDict(
        env_prefix="METALYARD_", env_file="metalyard.env", extra="ignore"
    )

    region: str = Field("default", pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")
    data_dir: Path = Path.home() / ".local" / "share" / "metalyard"
    database_url: str = ""
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    tls_cert: Path | None = None
    tls_key: Path | None = None
    secret_key: str = ""
    """Fernet keys for secrets at rest, comma-separated, newest first (the first encrypts);
    empty: a key file made in the data directory on first use."""
    bmc_verify_tls: bool = True
    """Verify BMC certificates (Redfish); turn off only for BMCs with self-signed ones."""
    bmc_ca_bundle: Path | None = None
    """CA bundle (file or directory) for BMC certificates, instead of the system's."""
    max_request_bytes: int = Field(32 * 1024 * 1024, ge=1024)
    """Larger request bodies are refused with 413 (a 10,000-row import is about 5 MB)."""
    flow_modules: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Extra modules to import for their flows (the built-in concepts register theirs): a
    JSON list or comma-separated names."""
    worker_concurrency: int = Field(64, ge=1, le=1024)
    """Beans one worker runs at once."""
    worker_lease_seconds: float = Field(30.0, ge=1.0, le=3600.0)
    """How long a worker's claim on a bean lasts without a heartbeat; a killed worker's beans
    are taken over after this."""
    embedded_worker: bool = True
    """`serve` runs a worker in the same process (the zero-setup default)."""
    discovery_networks: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["0.0.0.0/0", "::/0"]
    )
    """Source networks agents may call from (their first contact carries no token): set it
    to the discovery networks, as a JSON list or comma-separated."""
    agent_kernel_url: str = ""
    """Where iPXE fetches the agent's kernel; empty: `<this server>/boot/agent/vmlinuz`,
    served from `<data dir>/agent/`."""
    agent_initrd_url: str = ""
    """Where iPXE fetches the agent's initrd; empty: `<this server>/boot/agent/initrd.img`."""
    maker_checker: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(CHANGE_ACTIONS)
    )
    """Actions that wait for a second person's approval (all of them by default): a JSON list
    or comma-separated names; empty: none."""
    public_url: str = Field("", pattern=r"^(https?://[^\s,#]+)?$")
    """How machines on the provisioning networks reach this server (iPXE fetches its boot
    script there); empty: scheme://host:port of this server."""
    dhcp_interface: str = Field("", pattern=r"^[\w.:@-]{0,15}$")
    """The interface dnsmasq serves (on the provisioning network); no default: a DHCP server
    answering on every interface of the host would disturb the other networks."""
    dhcp_hosts_dir: Path = Field(default_factory=lambda data: data["data_dir"] / "dhcp" / "hosts")
    """dnsmasq's `dhcp-hostsdir`: one file per known MAC, kept in step by `metalyard dhcp
    sync`; dnsmasq's user (nobody) must be able to read it."""
    dhcp_pid_file: Path = Field(
        default_factory=lambda data: data["data_dir"] / "dhcp" / "dnsmasq.pid"
    )
    """dnsmasq's pid file, which the sync signals (SIGHUP) when hosts were removed or changed."""
    dhcp_known_lease: str = Field("12h", pattern=r"^([0-9]+[smhdw]?|infinite)$")
    """Lease of a machine IPAM knows (dnsmasq's spelling: 45m, 12h, 1d, infinite)."""
    dhcp_discovery_lease: str = Field("2m", pattern=r"^([0-9]+[smhdw]?|infinite)$")
    """Lease of an unknown machine: short, so it takes its fixed address soon after discovery
    makes it known (dnsmasq's minimum is 2m)."""
    tftp_root: Path = Path("/usr/lib/ipxe")
    """Where dnsmasq's TFTP server finds undionly.kpxe and ipxe.efi (Debian's `ipxe`)."""

    @field_validator("maker_checker", "flow_modules", "discovery_networks", mode="before")
    @classmethod
    def _listed(cls, value: Any) -> Any:
        """The environment's text as a list: `["a", "b"]` or `a,b`."""
        if not isinstance(value, str):
            return value
        if value.lstrip().startswith("["):
            try:
                return json.loads(value)
            except ValueError:
                raise ValueError(
                    'not a JSON list (["a", "b"]); or give the values comma-separated (a,b)'
                ) from None
        return [name.strip() for name in value.split(",") if name.strip()]

    @field_validator("maker_checker")
    @classmethod
    def _known_actions(cls, value: list[str]) -> list[str]:
        # A misspelt action would otherwise run without approval, silently.
        unknown = [name for name in value if name not in CHANGE_ACTIONS]
        if unknown:
            raise ValueError(
                f"unknown action(s) {', '.join(unknown)}; the known ones are "
                f"{', '.join(CHANGE_ACTIONS)}"
            )
        return value

    @field_validator("discovery_networks")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        # Checked as discovery.service.check_source reads them (host bits allowed), so a
        # typo refuses the start instead of failing every agent's boot with a 500.
        for network in value:
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError:
                raise ValueError(
                    f"{network!r} is not a network: expected addresses with a prefix length, "
                    "like 10.20.0.0/16 or fd00::/64"
                ) from None
        return value

    @field_validator("secret_key")
    @classmethod
    def _fernet_keys(cls, value: str) -> str:
        # Never quote the value: it is the secret.
        if not value.strip():
            return value
        entries = [entry.strip() for entry in value.split(",")]
        for position, entry in enumerate(entries, 1):
            where = f"entry {position} of {len(entries)}" if len(entries) > 1 else "it"
            if not entry:
                raise ValueError(f"{where} is empty; give the keys comma-separated, newest first")
            if not _is_fernet_key(entry):
                raise ValueError(
                    f"{where} is not a Fernet key (32 url-safe base64-encoded bytes: "
                    "`cryptography.fernet.Fernet.generate_key()` makes one); give the keys "
                    "comma-separated, newest first, or leave it unset for a key file in the "
                    "data directory"
                )
        return value

    @field_validator("data_dir")
    @classmethod
    def _directory(cls, value: Path) -> Path:
        if value.exists() and not value.is_dir():
            raise ValueError(f"{value} is not a directory")
        return value

    @field_validator("bmc_ca_bundle")
    @classmethod
    def _exists(cls, value: Path | None) -> Path | None:
        if value is not None and not value.exists():
            raise ValueError(f"{value} does not exist")
        return value

    @model_validator(mode="after")
    def _tls_pair(self) -> "Settings":
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key must be given together")
        return self

    @cached_property
    def effective_database_url(self) -> str:
        """The configured URL, or an SQLite file in the data directory (the embedded default)."""
        if self.database_url.startswith("postgresql://"):
            # SQLAlchemy's default driver would be psycopg2; metalyard ships with psycopg 3.
            return self.database_url.replace("postgresql://", "postgresql+psycopg://", 1)
        return self.database_url or f"sqlite:///{self.data_dir / 'metalyard.db'}"

    @property
    def scheme(self) -> str:
        return "https" if self.tls_cert else "http"


def _is_fernet_key(key: str) -> bool:
    from cryptography.fernet import Fernet

    try:
        Fernet(key)
    except ValueError:
        return False
    return True


def check_database_url(url: str) -> None:
    """Refuse a URL metalyard cannot use, saying what it can; the URL is never quoted, as it
    may hold a password. (Not a validator: tests build settings with placeholder URLs.)"""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    expected = "expected sqlite:///PATH or postgresql+psycopg://USER:PASSWORD@HOST/DATABASE"
    try:
        backend, _, driver = make_url(url).drivername.partition("+")
    except ArgumentError:
        raise ValueError(f"not a database URL; {expected}") from None
    if backend not in ("sqlite", "postgresql"):
        raise ValueError(
            f"{backend!r} is not supported: metalyard runs on SQLite or PostgreSQL; {expected}"
        )
    if driver not in ("", "pysqlite", "psycopg"):
        raise ValueError(f"the driver {driver!r} is not supported; {expected}")
