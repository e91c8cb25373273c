"""The states of purchases, and the one table of moves each may make."""

from enum import StrEnum


class RequestState(StrEnum):
    OPEN = "open"
    APPROVED = "approved"
    REJECTED = "rejected"
    CANCELLED = "cancelled"


class OrderState(StrEnum):
    DRAFT = "draft"
    APPROVED = "approved"
    ORDERED = "ordered"
    PARTIALLY_DELIVERED = "partially_delivered"
    DELIVERED = "delivered"
    CLOSED = "closed"
    CANCELLED = "cancelled"


class StageState(StrEnum):
    PLANNED = "planned"
    SHIPPED = "shipped"
    DELIVERED = "delivered"
    RACKED = "racked"


class MatchOutcome(StrEnum):
    MATCHED = "matched"
    UNKNOWN = "unknown"
    """No order expects it: raised, never adopted silently."""
    OVER_DELIVERED = "over_delivered"
    """Its vendor and profile are on order, but every unit ordered has already arrived."""


ORDER_MOVES: dict[OrderState, frozenset[OrderState]] = {
    OrderState.DRAFT: frozenset({OrderState.APPROVED, OrderState.CANCELLED}),
    OrderState.APPROVED: frozenset({OrderState.ORDERED, OrderState.CANCELLED}),
    OrderState.ORDERED: frozenset({OrderState.CANCELLED}),
    OrderState.PARTIALLY_DELIVERED: frozenset({OrderState.CANCELLED}),
    OrderState.DELIVERED: frozenset(),
    OrderState.CLOSED: frozenset(),
    OrderState.CANCELLED: frozenset(),
}
"""Moves people make; the others (delivered, closed) follow from stages and units."""

STAGE_MOVES: dict[StageState, StageState | None] = {
    StageState.PLANNED: StageState.SHIPPED,
    StageState.SHIPPED: StageState.DELIVERED,
    StageState.DELIVERED: StageState.RACKED,
    StageState.RACKED: None,
}
"""Each stage moves one step forward at a time."""

ARRIVED = frozenset({StageState.DELIVERED, StageState.RACKED})
OPEN_ORDERS = frozenset({OrderState.ORDERED, OrderState.PARTIALLY_DELIVERED, OrderState.DELIVERED})
"""Orders discovered servers are matched against."""
