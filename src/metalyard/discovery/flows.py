"""The evaluation flow, re-walked on every boot of a server:

    evaluating → match (procurement) → evaluate (profile and health) → allocate (IPAM)
    → promote (SPARE) → power off

A server with problems goes to QUARANTINED with an error tag per check, and the later beans
skip; its next clean boot starts the flow again and brings it back. Every bean looks before
it acts, so a second boot of a SPARE with the same facts changes nothing.
"""

from sqlalchemy import select

from metalyard.auth.actor import Actor
from metalyard.db import utcnow
from metalyard.discovery.evaluation import evaluate
from metalyard.discovery.models import Evaluation
from metalyard.drivers import Capability, PowerAction, PowerState
from metalyard.drivers.service import BmcNotSet
from metalyard.errors import MetalyardError
from metalyard.inventory import service as inventory
from metalyard.inventory.lifecycle import AssetState
from metalyard.inventory.models import Asset
from metalyard.inventory.schemas import TagChange
from metalyard.orchestrator.beans import Done, Skipped, Task
from metalyard.orchestrator.flows import Bean, Condition, Flow, RetryPolicy, flows
from metalyard.procurement import matching
from metalyard.procurement.models import (
    AssetMatch,
    MachineClassProfile,
    OrderLine,
    ProfileVersion,
)
from metalyard.procurement.states import MatchOutcome

ACTOR = Actor.system("discovery")
UNKNOWN_TAG = "discovery.unknown"
ERROR_TAG = "error."
"""Problems are also tags (`error.memory=256 GiB found, 512 GiB expected`), so they can be
searched like any other."""
ADDRESS_ROLE = "provisioning"
LEFT_ON = "left it on"
"""How a power-off skipped for want of a BMC begins its reason (see service.why)."""


def _asset(ctx) -> Asset:
    """The subject, loaded once per bean: `satisfied` and `run` share the bean's session."""
    cached = ctx.session.info
    if "asset" not in cached:
        cached["asset"] = inventory.get_asset(ctx.session, serial=ctx.subject.id)
    return cached["asset"]


def _cleared(ctx) -> bool:
    """Evaluation ran in this walk and found nothing wrong."""
    evaluation = ctx.data.get("evaluate")
    return evaluation is not None and evaluation["problems"] == 0


class StartEvaluating(Task):
    def satisfied(self, ctx) -> bool:
        return _asset(ctx).state not in (AssetState.DISCOVERED, AssetState.QUARANTINED)

    def run(self, ctx):
        asset = _asset(ctx)
        inventory.transition(
            ctx.session, asset, to=AssetState.EVALUATING, actor=ACTOR, reason="the agent booted"
        )
        return Done()


class Match(Task):
    def run(self, ctx):
        region = ctx.params.get("region", "")
        found = matching.match_asset(
            ctx.session, serial=ctx.subject.id, profile=None, region=region, actor=ACTOR
        )
        unknown = any(tag.key == UNKNOWN_TAG for tag in _asset(ctx).tags)
        if found.outcome is MatchOutcome.MATCHED and unknown:
            change = TagChange(remove=[UNKNOWN_TAG])
            inventory.change_tags(ctx.session, serial=ctx.subject.id, change=change)
        return Done({"outcome": found.outcome.value, "order": found.order})


class Evaluate(Task):
    """Hold the facts to the profile the server was bought as, and to the health rules."""

    def run(self, ctx):
        asset = _asset(ctx)
        version = _expected_version(ctx.session, asset)
        spec = version.spec if version else None
        problems = [p.to_dict() for p in evaluate(asset.facts or {}, spec)]
        problems += _procurement_problems(asset, ctx.data.get("match", {}))
        profile = (
            f"{version.profile.vendor.name}/{version.profile.name}@{version.number}"
            if version
            else ""
        )
        evaluation = ctx.session.get(Evaluation, asset.id) or Evaluation(asset_id=asset.id)
        evaluation.profile, evaluation.problems = profile, problems
        evaluation.evaluated_at = utcnow()
        ctx.session.add(evaluation)
        errors = {ERROR_TAG + p["check"].replace(":", "."): p["message"][:255] for p in problems}
        current = {t.key: t.value for t in asset.tags if t.key.startswith(ERROR_TAG)}
        if current != errors:
            stale = [key for key in current if key not in errors]
            change = TagChange(set=errors, remove=stale)
            inventory.change_tags(ctx.session, serial=asset.serial, change=change)
        if problems and asset.state is not AssetState.QUARANTINED:
            summary = "; ".join(p["message"] for p in problems)
            inventory.transition(
                ctx.session, asset, to=AssetState.QUARANTINED, actor=ACTOR, reason=summary
            )
        return Done({"problems": len(problems), "profile": profile})


def _procurement_problems(asset: Asset, match: dict) -> list[dict[str, str]]:
    """A server discovery created itself serves only once an order accounts for it."""
    if match.get("outcome") == MatchOutcome.MATCHED or not any(
        tag.key == UNKNOWN_TAG for tag in asset.tags
    ):
        return []
    why = {
        MatchOutcome.OVER_DELIVERED: "more units than ordered",
        MatchOutcome.UNKNOWN: "no purchase order expects it",
    }.get(match.get("outcome"), "not matched")
    return [
        {
            "check": "procurement",
            "message": f"procurement: unknown asset, {why}",
            "fix": "add its serial to an order's packing list (or enrol it by hand), then "
            "reboot it",
        }
    ]


def _expected_version(session, asset: Asset) -> ProfileVersion | None:
    """The profile version of the order line it matched, else its machine class's."""
    line_version = session.scalar(
        select(ProfileVersion)
        .join(OrderLine, OrderLine.profile_version_id == ProfileVersion.id)
        .join(AssetMatch, AssetMatch.line_id == OrderLine.id)
        .where(AssetMatch.asset_id == asset.id, AssetMatch.outcome == MatchOutcome.MATCHED)
    )
    if line_version is not None or asset.machine_class_id is None:
        return line_version
    return session.scalar(
        select(ProfileVersion)
        .join(MachineClassProfile)
        .where(MachineClassProfile.machine_class_id == asset.machine_class_id)
        .order_by(ProfileVersion.id)
        .limit(1)
    )


class Allocate(Task):
    """A provisioning address for each interface, from the prefix of the asset's site."""

    def run(self, ctx):
        if not _cleared(ctx):
            return Skipped("not cleared by evaluation")
        from metalyard.network import service as ipam
        from metalyard.network.schemas import IpAllocationCreate

        asset = _asset(ctx)
        site = asset.rack.site.name if asset.rack else None
        if site is None:
            return Skipped("the asset has no rack yet: no site to take addresses from")
        addresses = {}
        for interface in asset.interfaces:
            request = IpAllocationCreate(
                serial=asset.serial, interface=interface.name, site=site, role=ADDRESS_ROLE
            )
            try:
                found = ipam.allocate(ctx.session, data=request)
                addresses[interface.name] = found.allocation["address"]
            except MetalyardError as error:
                return Skipped(f"no {ADDRESS_ROLE} address for {interface.name}: {error}")
        return Done({"addresses": addresses})


class Promote(Task):
    def satisfied(self, ctx) -> bool:
        return _asset(ctx).state is AssetState.SPARE

    def run(self, ctx):
        if not _cleared(ctx):
            return Skipped("not cleared by evaluation")
        asset = _asset(ctx)
        inventory.transition(
            ctx.session, asset, to=AssetState.SPARE, actor=ACTOR, reason="evaluation passed"
        )
        if ctx.session.get(AssetMatch, asset.id) is not None:
            matching.mark_passed(ctx.session, serial=asset.serial, actor=ACTOR)
        return Done()


class PowerOff(Task):
    """A SPARE waits switched off, to save energy; one whose BMC is not on record yet stays
    on, and the skip says what to set."""

    def satisfied(self, ctx) -> bool:
        if not _cleared(ctx):
            return True
        if isinstance(ctx.driver, BmcNotSet):
            return False  # run says why it stays on
        if Capability.POWER not in ctx.driver.capabilities():
            return True
        return ctx.driver.get_power_state() is PowerState.OFF

    def run(self, ctx):
        if isinstance(ctx.driver, BmcNotSet):
            return Skipped(f"{LEFT_ON}: {ctx.driver.problem.message}")
        ctx.driver.set_power(PowerAction.OFF)
        return Done()


RETRY = RetryPolicy(max_attempts=8, base=1.0, cap=60.0)

evaluate_flow = flows.register(
    Flow(
        name="discovery.evaluate",
        beans=(
            Bean("evaluating", StartEvaluating()),
            Bean("match", Match(), depends_on={"evaluating": Condition.SUCCEEDED}),
            Bean("evaluate", Evaluate(), depends_on={"match": Condition.SUCCEEDED}),
            Bean("allocate", Allocate(), depends_on={"evaluate": Condition.SUCCEEDED}),
            Bean("promote", Promote(), depends_on={"allocate": Condition.SUCCEEDED}),
            Bean("power_off", PowerOff(), depends_on={"promote": Condition.SUCCEEDED}, retry=RETRY),
        ),
    )
)
