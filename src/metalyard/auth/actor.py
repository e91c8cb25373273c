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
    approved_by: str = ""
    """Who approved the change this actor carries out for its requester (maker-checker)."""

    @property
    def label(self) -> str:
        """Who acted, for a record with room for one name: the approver goes in brackets."""
        return f"{self.name} (approved by {self.approved_by})" if self.approved_by else self.name

    @classmethod
    def system(cls, name: str, *, request_id: str = "") -> "Actor":
        """metalyard itself (a worker, the bootstrap), acting with full rights."""
        return cls(name=f"system:{name}", scope=Scope.ADMIN, request_id=request_id)
