"""Who is acting: carried from the API (or a worker) into every service call."""

from dataclasses import dataclass

from metalyard.auth.scopes import Scope


@dataclass(frozen=True)
class Actor:
    name: str
    scope: Scope
    user_id: int | None = None
    token_id: int | None = None
    request_id: str = ""
    client: str = ""

    @classmethod
    def system(cls, name: str, *, request_id: str = "") -> "Actor":
        """metalyard itself (a worker, the bootstrap), acting with full rights."""
        return cls(name=f"system:{name}", scope=Scope.ADMIN, request_id=request_id)
