"""API shapes shared by every concept: pages, errors, and the limits on common fields."""

from typing import Annotated, Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from pydantic.json_schema import SkipJsonSchema

Name = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$"),
]
"""An identifier that may end up in a URL, a file name or a DHCP entry."""
Text = Annotated[str, StringConstraints(max_length=1024)]

REGION_HEADER = "X-Metalyard-Region"
"""Names the region a request is meant for; a server of another region refuses it (421)."""

Unset = SkipJsonSchema[None]
"""For update fields that cannot be cleared: left out (or null), they stay as they are."""


class Schema(BaseModel):
    """Input shapes reject unknown fields, so a typo is an error rather than a silent no-op."""

    model_config = ConfigDict(extra="forbid")


class OutSchema(BaseModel):
    model_config = ConfigDict(from_attributes=True)


T = TypeVar("T")

MAX_PAGE_SIZE = 1000


class PageOut(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(
        None, description="Pass as `cursor` to get the next page; null on the last page."
    )


class ErrorBody(BaseModel):
    code: str = Field(description="Stable machine-readable error code.")
    message: str = Field(description="What is wrong, for a person.")
    details: Any = None


class RegionOut(BaseModel):
    name: str = Field(description="The region this deployment serves.")
    version: str = Field(description="metalyard's version.")
