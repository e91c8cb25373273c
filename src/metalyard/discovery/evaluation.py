"""Evaluation rules: what the agent found against what was bought, and health.

Pure functions of the agent's facts (`metalyard.agent.facts.Facts.to_dict()`) and a profile
version's spec. Each problem names the check, says what was found and what was expected, and
how to fix it, for the engineer at the console and for `metalyard asset why`.
"""

from dataclasses import dataclass
from typing import Any

GIB = 1024**3
MEMORY_TOLERANCE = 0.05
KERNEL_SHARE = 0.025
"""The kernel keeps some memory for itself: MemTotal reads a few percent under the DIMMs."""
DISK_TOLERANCE = 0.05
"""Label gigabytes vs what the disk reports, and vendor rounding."""


@dataclass(frozen=True)
class Problem:
    check: str
    """`cpu`, `memory`, `disks`, `disk:<name>`, `nics`, `nic:<name>`, `firmware:<component>`,
    `facts`."""
    message: str
    fix: str

    def to_dict(self) -> dict[str, str]:
        return {"check": self.check, "message": self.message, "fix": self.fix}


def evaluate(facts: dict[str, Any], spec: dict[str, Any] | None) -> list[Problem]:
    """Every mismatch with the spec (when there is one) and every failed health rule."""
    problems = health(facts)
    if spec is not None:
        problems += (
            _cpu(facts, spec["cpu"])
            + _memory(facts, spec["memory_gib"])
            + _disks(facts, spec.get("disks") or [])
            + _nics(facts, spec.get("nics") or [])
            + _firmware(facts, spec.get("firmware") or {})
        )
    return problems


def health(facts: dict[str, Any]) -> list[Problem]:
    problems = [
        Problem(
            f"disk:{disk['name']}",
            f"disk {disk['name']}: SMART health check failed",
            f"replace disk {disk['name']} (serial {disk.get('serial') or 'unknown'})",
        )
        for disk in facts.get("disks") or []
        if disk.get("healthy") is False
    ]
    missing = facts.get("missing") or {}
    for essential in ("memory", "cpu", "disks", "nics"):
        if facts.get(essential) in (None, {}) and essential in missing:
            problems.append(
                Problem(
                    "facts",
                    f"{essential}: could not be read ({missing[essential]})",
                    "check the agent's console and the hardware; then reboot to retry",
                )
            )
    return problems


def _cpu(facts: dict[str, Any], expected: dict[str, Any]) -> list[Problem]:
    cpu = facts.get("cpu") or {}
    problems = []
    model = cpu.get("model") or ""
    if expected["model"].lower() not in model.lower():
        problems.append(
            Problem(
                "cpu",
                f"cpu: {model or 'unknown model'} found, {expected['model']} expected",
                "fit the ordered CPU model, or order this configuration as a new profile version",
            )
        )
    sockets = cpu.get("sockets")
    if sockets is not None and sockets != expected["count"]:
        problems.append(
            Problem(
                "cpu",
                f"cpu: {sockets} socket(s) populated, {expected['count']} expected",
                "fit the missing CPU(s)",
            )
        )
    return problems


def _memory(facts: dict[str, Any], expected_gib: int) -> list[Problem]:
    memory = facts.get("memory") or {}
    dimms = memory.get("dimms") or []
    if dimms:
        found_gib = sum(d.get("size_bytes") or 0 for d in dimms) / GIB
        found, installed = f"{round(found_gib)} GiB", found_gib
    elif memory.get("total_bytes"):
        found_gib = memory["total_bytes"] / GIB
        found, installed = f"{round(found_gib)} GiB usable", found_gib / (1 - KERNEL_SHARE)
    else:
        return []  # reported as missing facts by `health`
    if abs(installed - expected_gib) <= expected_gib * MEMORY_TOLERANCE:
        return []
    return [
        Problem(
            "memory",
            f"memory: {found} found, {expected_gib} GiB expected",
            "check that every DIMM is seated and recognised in setup; replace failed DIMMs",
        )
    ]


def _disks(facts: dict[str, Any], expected: list[dict[str, Any]]) -> list[Problem]:
    wanted = sorted((d["size_gb"] for d in expected for _ in range(d["count"])), reverse=True)
    found = sorted(
        ((disk.get("size_bytes") or 0) / 1e9, disk["name"]) for disk in facts.get("disks") or []
    )[::-1]
    problems = []
    if len(found) != len(wanted):
        problems.append(
            Problem(
                "disks",
                f"disks: {len(found)} found, {len(wanted)} expected",
                "fit or reseat the missing disks (check the backplane cabling)",
            )
        )
    for want, (size, name) in zip(wanted, found, strict=False):
        if abs(size - want) > want * DISK_TOLERANCE:
            problems.append(
                Problem(
                    f"disk:{name}",
                    f"disk {name}: {round(size)} GB found, {want} GB expected",
                    f"replace disk {name} with a {want} GB one",
                )
            )
    return problems


def _nics(facts: dict[str, Any], expected: list[dict[str, Any]]) -> list[Problem]:
    nics = facts.get("nics") or []
    problems = [
        Problem(
            f"nic:{nic['name']}",
            f"nic {nic['name']}: link down",
            f"check the cable and the switch port of {nic['name']} ({nic.get('mac', '')})",
        )
        for nic in nics
        if nic.get("link_up") is False
    ]
    for group in expected:
        speed_mbps = group["speed_gbps"] * 1000
        fast = [n for n in nics if (n.get("speed_mbps") or 0) >= speed_mbps]
        if len(fast) < group["count"]:
            problems.append(
                Problem(
                    "nics",
                    f"nics: {len(fast)} at {group['speed_gbps']:g} Gb/s found, "
                    f"{group['count']} expected",
                    "check that the ordered NICs are fitted and negotiate full speed",
                )
            )
    return problems


def _firmware(facts: dict[str, Any], baseline: dict[str, str]) -> list[Problem]:
    found = {"bios": (facts.get("system") or {}).get("bios_version")}
    problems = []
    for component, version in sorted(baseline.items()):
        have = found.get(component)
        if have is not None and have != version:
            problems.append(
                Problem(
                    f"firmware:{component}",
                    f"firmware {component}: {have} found, {version} expected",
                    f"update {component} firmware to {version} (a firmware campaign does this)",
                )
            )
    return problems
