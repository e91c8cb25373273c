"""The asset lifecycle: its states and the one table of allowed moves."""

from enum import StrEnum


class AssetState(StrEnum):
    DISCOVERED = "DISCOVERED"
    EVALUATING = "EVALUATING"
    SPARE = "SPARE"
    PROVISIONING = "PROVISIONING"
    BAREMETAL = "BAREMETAL"
    RELEASING = "RELEASING"
    QUARANTINED = "QUARANTINED"
    DECOMMISSIONED = "DECOMMISSIONED"


class Health(StrEnum):
    UNKNOWN = "UNKNOWN"
    OK = "OK"
    WARNING = "WARNING"
    CRITICAL = "CRITICAL"


S = AssetState
TRANSITIONS: dict[AssetState, frozenset[AssetState]] = {
    S.DISCOVERED:     frozenset({S.EVALUATING, S.QUARANTINED, S.DECOMMISSIONED}),
    S.EVALUATING:     frozenset({S.SPARE, S.QUARANTINED, S.DECOMMISSIONED}),
    S.SPARE:          frozenset({S.PROVISIONING, S.EVALUATING, S.QUARANTINED, S.DECOMMISSIONED}),
    S.PROVISIONING:   frozenset({S.BAREMETAL, S.SPARE, S.QUARANTINED}),
    S.BAREMETAL:      frozenset({S.RELEASING, S.QUARANTINED}),
    S.RELEASING:      frozenset({S.SPARE, S.QUARANTINED}),
    S.QUARANTINED:    frozenset({S.EVALUATING, S.DECOMMISSIONED}),
    S.DECOMMISSIONED: frozenset(),
}  # fmt: skip


def is_allowed(source: AssetState, target: AssetState) -> bool:
    return target in TRANSITIONS[source]


def approval_action(source: AssetState, target: AssetState) -> str | None:
    """The maker-checker action name a move falls under, if any (see Settings.maker_checker)."""
    if target is AssetState.DECOMMISSIONED:
        return "asset.decommission"
    if source is AssetState.BAREMETAL:
        return "asset.leave_baremetal"
    return None
