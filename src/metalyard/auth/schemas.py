"""API shapes of users, teams, projects and tokens."""

from datetime import datetime
from typing import Annotated

from pydantic import Field, StringConstraints

from metalyard.auth.scopes import Scope
from metalyard.schemas import Name, OutSchema, Schema, Text, Unset

Password = Annotated[str, StringConstraints(min_length=12, max_length=256)]


class UserCreate(Schema):
    name: Name
    email: Annotated[str, StringConstraints(max_length=254)] = ""
    role: Scope = Field(Scope.READ, description="The highest scope this user's tokens may carry.")
    password: Password | None = Field(
        None, description="Lets the user mint tokens with name and password (write-only)."
    )


class UserUpdate(Schema):
    email: Annotated[str, StringConstraints(max_length=254)] | Unset = None
    role: Scope | Unset = None
    password: Password | Unset = None
    active: bool | Unset = None
    version: int | None = None


class UserOut(OutSchema):
    name: str
    email: str
    role: Scope
    active: bool
    teams: list[str]
    version: int
    created_at: datetime


class TeamCreate(Schema):
    name: Name
    description: Text = ""
    members: Annotated[list[Name], Field(max_length=1000)] = []


class TeamUpdate(Schema):
    description: Text | Unset = None
    members: Annotated[list[Name], Field(max_length=1000)] | Unset = None
    version: int | None = None


class TeamOut(OutSchema):
    name: str
    description: str
    members: list[str]
    version: int
    created_at: datetime


class ProjectCreate(Schema):
    name: Name
    team: Name
    description: Text = ""


class ProjectUpdate(Schema):
    team: Name | Unset = None
    description: Text | Unset = None
    version: int | None = None


class ProjectOut(OutSchema):
    name: str
    team: str
    description: str
    version: int
    created_at: datetime


class TokenCreate(Schema):
    scope: Scope = Scope.READ
    name: Annotated[str, StringConstraints(max_length=64)] = ""
    expires_in: int | None = Field(
        None, ge=60, le=366 * 86400, description="Seconds until the token expires; none: never."
    )


class TokenOut(OutSchema):
    id: int
    user: str
    name: str
    scope: Scope
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None


class TokenCreated(TokenOut):
    token: str = Field(description="The secret. Shown this once; only its hash is stored.")


class WhoAmI(OutSchema):
    user: str | None
    scope: Scope
    token_id: int | None
