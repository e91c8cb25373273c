"""Region profiles in the CLI's config file, and which server a command talks to.

The file holds tokens, so it is written with mode 0600, atomically (a crash never leaves
half a file), in a directory only its owner can enter.
"""

import os
from dataclasses import dataclass, replace
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from metalyard.cli.exit_codes import NoRegion
from metalyard.errors import InvalidInput

CONFIG_ENV = "METALYARD_CONFIG"
URL_ENV = "METALYARD_URL"
TOKEN_ENV = "METALYARD_TOKEN"
PROFILE_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$"


class Profile(BaseModel):
    """How to reach one region."""

    model_config = ConfigDict(extra="ignore")

    url: str
    token: str | None = None
    ca_bundle: str | None = None
    insecure: bool = False
    region: str | None = None
    """The region its server said it serves when the profile was added (None: never asked)."""


class Config(BaseModel):
    model_config = ConfigDict(extra="ignore")

    current: str | None = None
    regions: dict[str, Profile] = Field(default_factory=dict)

    def profile(self, name: str) -> Profile:
        if name not in self.regions:
            known = ", ".join(sorted(self.regions)) or "none"
            raise NoRegion(
                f"no region named {name!r} (configured: {known}); "
                f"add it with: metalyard region add {name} --url URL"
            )
        return self.regions[name]


def config_path() -> Path:
    if given := os.environ.get(CONFIG_ENV):
        return Path(given).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "metalyard" / "config.yaml"


def load(path: Path | None = None) -> Config:
    path = path or config_path()
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        return Config()
    except (OSError, yaml.YAMLError) as error:
        raise InvalidInput(f"cannot read {path}: {error}") from None
    try:
        return Config.model_validate(raw)
    except ValidationError as error:
        problem = error.errors()[0]
        where = ".".join(str(p) for p in problem["loc"])
        raise InvalidInput(f"{path} is not a metalyard config: {where}: {problem['msg']}") from None


def save(config: Config, path: Path | None = None) -> Path:
    path = path or config_path()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    text = yaml.safe_dump(config.model_dump(exclude_defaults=True), sort_keys=False)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # in case the file was left over with looser bits
        with os.fdopen(fd, "w") as file:
            file.write(text)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path


@dataclass(frozen=True)
class Target:
    """The server one command talks to, and where that choice came from."""

    name: str
    url: str
    token: str | None
    verify: bool | str = True
    region: str | None = None
    """The region the server must serve, as `region add` found it; None when not known."""

    @property
    def insecure(self) -> bool:
        return self.verify is False


def resolve(config: Config, region: str | None, environ: dict[str, str] | None = None) -> Target:
    """`--region` wins; else METALYARD_URL (with METALYARD_TOKEN); else the current profile.

    METALYARD_TOKEN alone replaces the current profile's token. A profile's token is never
    sent to a URL taken from the environment.
    """
    environ = dict(os.environ if environ is None else environ)
    if region:
        return _target(region, config.profile(region))
    env_url, env_token = environ.get(URL_ENV), environ.get(TOKEN_ENV)
    if env_url:
        return Target(name=URL_ENV, url=env_url, token=env_token)
    if not config.current:
        raise NoRegion(
            "no region configured: run `metalyard region add NAME --url URL --token TOKEN` "
            f"(or set {URL_ENV})"
        )
    target = _target(config.current, config.profile(config.current))
    if env_token:
        return replace(target, token=env_token)
    return target


def _target(name: str, profile: Profile) -> Target:
    verify: bool | str = False if profile.insecure else (profile.ca_bundle or True)
    return Target(
        name=name, url=profile.url, token=profile.token, verify=verify, region=profile.region
    )
