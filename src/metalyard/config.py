"""Settings of one deployment (one region), from the environment or a file."""

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
    port: int = 8080
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
    flow_modules: list[str] = Field(default_factory=list)
    """Extra modules to import for their flows (the built-in concepts register theirs)."""
    worker_concurrency: int = Field(64, ge=1, le=1024)
    """Beans one worker runs at once."""
    worker_lease_seconds: float = Field(30.0, ge=1.0, le=3600.0)
    """How long a worker's claim on a bean lasts without a heartbeat; a killed worker's beans
    are taken over after this."""
    embedded_worker: bool = True
    """`serve` runs a worker in the same process (the zero-setup default)."""
    discovery_networks: list[str] = Field(default_factory=lambda: ["0.0.0.0/0", "::/0"])
    """Source networks agents may call from (their first contact carries no token): set it
    to the discovery networks."""
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

    @field_validator("maker_checker", mode="before")
    @classmethod
    def _action_names(cls, value: Any) -> Any:
        """The environment's text as a list: `["a", "b"]` or `a,b`."""
        if not isinstance(value, str):
            return value
        if value.lstrip().startswith("["):
            try:
                return json.loads(value)
            except ValueError:
                raise ValueError(
                    "not a JSON list of action names; or give them comma-separated"
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

    @model_validator(mode="after")
    def _tls_pair(self) -> "Settings":
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key must be given together")
        return self

    @cached_property
    def effective_database_url(self) -> str:
        """The configured URL, or an SQLite file in the data directory (the embedded default)."""
        return self.database_url or f"sqlite:///{self.data_dir / 'metalyard.db'}"

    @property
    def scheme(self) -> str:
        return "https" if self.tls_cert else "http"
