"""Secrets at rest (BMC passwords): Fernet with a key ring, so keys can be rotated.

The first key encrypts; every key decrypts. Rotation is: put a new key first, re-encrypt
every stored secret (`metalyard db rotate-key`), then drop the old key.
"""

import os
import tempfile
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from metalyard.config import Settings
from metalyard.errors import MetalyardError

KEY_FILE = "secret.key"


class SecretKeyError(MetalyardError):
    """A stored secret cannot be read with the configured keys."""

    code = "secret_key_error"


class Keyring:
    def __init__(self, keys: list[str]) -> None:
        if not keys:
            raise ValueError("a key ring needs at least one key")
        try:
            self._fernet = MultiFernet([Fernet(key) for key in keys])
        except ValueError:
            raise SecretKeyError(
                "a secret key is not a valid Fernet key (32 url-safe base64-encoded bytes); "
                "make one with `metalyard db rotate-key --generate`"
            ) from None

    @classmethod
    def from_settings(cls, settings: Settings) -> "Keyring":
        return cls(configured_keys(settings))

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken:
            raise SecretKeyError(
                "a stored secret cannot be decrypted with the configured keys: was the key "
                "that encrypted it removed before `metalyard db rotate-key` ran?"
            ) from None

    def rotate(self, token: str) -> str:
        """The same secret encrypted with the first key."""
        try:
            return self._fernet.rotate(token.encode()).decode()
        except InvalidToken:
            raise SecretKeyError(
                "a stored secret cannot be decrypted with the configured keys"
            ) from None


def configured_keys(settings: Settings, *, make: bool = True) -> list[str]:
    """`METALYARD_SECRET_KEY` (comma-separated, newest first), else the data directory's key
    file, made on first use so the embedded default needs no setup (none without `make`)."""
    if settings.secret_key:
        return [key.strip() for key in settings.secret_key.split(",") if key.strip()]
    path = key_file(settings)
    if not path.exists():
        if not make:
            return []
        _make_key_file(path)
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def key_file(settings: Settings) -> Path:
    return settings.data_dir / KEY_FILE


def _make_key_file(path: Path) -> None:
    """A new key file, unless another process or thread made one first: theirs stays, so
    that both use the same key (the audit log's MACs come from it on every write)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, partial = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mode 0600
    try:
        with os.fdopen(fd, "w") as file:
            file.write(f"{Fernet.generate_key().decode()}\n")
        os.link(partial, path)
    except FileExistsError:
        pass
    finally:
        os.unlink(partial)


def write_key_file(path: Path, keys: list[str]) -> None:
    """Replace the key file atomically, readable by its owner only."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write("".join(f"{key}\n" for key in keys))
    os.replace(partial, path)
