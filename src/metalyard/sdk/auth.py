"""Users, teams, projects, tokens, change requests and the audit log."""

from datetime import datetime, timedelta
from typing import Any

from metalyard.auth.audit.schemas import AuditEntryOut, AuditVerification
from metalyard.auth.changes.schemas import ChangeRequestOut
from metalyard.auth.changes.states import ChangeState
from metalyard.auth.schemas import (
    ProjectOut,
    TeamOut,
    TokenCreated,
    TokenOut,
    UserOut,
)
from metalyard.auth.scopes import Scope
from metalyard.sdk.base import Data, Namespace, with_version
from metalyard.sdk.http import Listing, body


class Users(Namespace):
    """Users are never deleted: disable one with `update(name, active=False)`."""

    path = "/v1/users"

    def list(
        self,
        *,
        page_size: int | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Listing[UserOut]:
        return self._http.pages(self.path, UserOut, None, page_size, limit=limit, cursor=cursor)

    def get(self, name: str) -> UserOut:
        return self._http.get(self._item(name), UserOut)

    def create(self, data: Data = None, /, **fields: Any) -> UserOut:
        return self._http.send("POST", self.path, UserOut, json=body(data, fields))

    def update(
        self, name: str, data: Data = None, /, *, version: int | None = None, **fields: Any
    ) -> UserOut:
        payload = with_version(body(data, fields), version)
        return self._http.send("PATCH", self._item(name), UserOut, json=payload)


class Teams(Namespace):
    path = "/v1/teams"

    def list(
        self,
        *,
        page_size: int | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Listing[TeamOut]:
        return self._http.pages(self.path, TeamOut, None, page_size, limit=limit, cursor=cursor)

    def get(self, name: str) -> TeamOut:
        return self._http.get(self._item(name), TeamOut)

    def create(self, data: Data = None, /, **fields: Any) -> TeamOut:
        return self._http.send("POST", self.path, TeamOut, json=body(data, fields))

    def update(
        self, name: str, data: Data = None, /, *, version: int | None = None, **fields: Any
    ) -> TeamOut:
        payload = with_version(body(data, fields), version)
        return self._http.send("PATCH", self._item(name), TeamOut, json=payload)

    def delete(self, name: str) -> None:
        self._http.request("DELETE", self._item(name))


class Projects(Namespace):
    path = "/v1/projects"

    def list(
        self,
        *,
        team: str | None = None,
        page_size: int | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Listing[ProjectOut]:
        return self._http.pages(
            self.path, ProjectOut, {"team": team}, page_size, limit=limit, cursor=cursor
        )

    def get(self, name: str) -> ProjectOut:
        return self._http.get(self._item(name), ProjectOut)

    def create(self, data: Data = None, /, **fields: Any) -> ProjectOut:
        return self._http.send("POST", self.path, ProjectOut, json=body(data, fields))

    def update(
        self, name: str, data: Data = None, /, *, version: int | None = None, **fields: Any
    ) -> ProjectOut:
        payload = with_version(body(data, fields), version)
        return self._http.send("PATCH", self._item(name), ProjectOut, json=payload)

    def delete(self, name: str) -> None:
        self._http.request("DELETE", self._item(name))


class Tokens(Namespace):
    path = "/v1/tokens"

    def create(
        self,
        scope: Scope | str = Scope.READ,
        name: str = "",
        expires_in: int | timedelta | None = None,
        *,
        basic: tuple[str, str] | None = None,
    ) -> TokenCreated:
        """Mint a token for yourself; its secret (`.token`) is shown this once.

        With `basic=(user, password)` the call authenticates with name and password instead
        of the client's token: the way from a read token to a short-lived write token.
        """
        if isinstance(expires_in, timedelta):
            expires_in = int(expires_in.total_seconds())
        payload = {"scope": str(scope), "name": name, "expires_in": expires_in}
        return self._http.send("POST", self.path, TokenCreated, json=payload, auth=basic)

    def list(
        self,
        all_users: bool = False,
        *,
        page_size: int | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Listing[TokenOut]:
        """Your tokens; with `all_users` (admin), everyone's. Secrets are never returned."""
        return self._http.pages(
            self.path, TokenOut, {"all_users": all_users}, page_size, limit=limit, cursor=cursor
        )

    def revoke(self, token_id: int) -> TokenOut:
        return self._http.send("DELETE", self._item(token_id), TokenOut)


class ChangeRequests(Namespace):
    """Maker-checker: commands parked until someone other than their requester decides."""

    path = "/v1/change-requests"

    def list(
        self,
        *,
        state: ChangeState | str | None = None,
        page_size: int | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Listing[ChangeRequestOut]:
        """Newest first."""
        return self._http.pages(
            self.path, ChangeRequestOut, {"state": state}, page_size, limit=limit, cursor=cursor
        )

    def get(self, change_id: int) -> ChangeRequestOut:
        return self._http.get(self._item(change_id), ChangeRequestOut)

    def approve(self, change_id: int, comment: str = "") -> ChangeRequestOut:
        """Run the parked command; if it fails, the request comes back FAILED with `result`."""
        return self._http.send(
            "POST", self._item(change_id, "approve"), ChangeRequestOut, json={"comment": comment}
        )

    def reject(self, change_id: int, comment: str = "") -> ChangeRequestOut:
        return self._http.send(
            "POST", self._item(change_id, "reject"), ChangeRequestOut, json={"comment": comment}
        )


class Audit(Namespace):
    """The hash-chained log of every mutating call (admin tokens only)."""

    path = "/v1/audit"

    def list(
        self,
        *,
        actor: str | None = None,
        target: str | None = None,
        action: str | None = None,
        outcome: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        page_size: int | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Listing[AuditEntryOut]:
        """Newest first; `target` is a path and what is under it (`assets/SN1`, not SN13);
        `since` must be before `until`, both with a timezone."""
        params = {
            "actor": actor,
            "target": target,
            "action": action,
            "outcome": outcome,
            "since": since,
            "until": until,
        }
        return self._http.pages(
            self.path, AuditEntryOut, params, page_size, limit=limit, cursor=cursor
        )

    def verify(self) -> AuditVerification:
        """Recompute the chain; `.problems` names every edited entry and every gap."""
        return self._http.get(self._item("verify"), AuditVerification)
