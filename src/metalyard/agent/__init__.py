"""The on-server agent: runs on a PXE-booted machine and reports what it is.

Standard library only, so it runs in a minimal boot image.
"""

from metalyard.agent.facts import (
    Bmc,
    CommandFailed,
    CommandNotFound,
    CommandTimeout,
    CpuFacts,
    DictSource,
    Dimm,
    Disk,
    Facts,
    FactSource,
    LinuxSource,
    LldpNeighbour,
    MemoryFacts,
    Nic,
    SourceError,
    SystemFacts,
    collect,
)
from metalyard.agent.runtime import Agent, Status, Step
from metalyard.agent.server import CommandServer

__all__ = [
    "Agent",
    "Bmc",
    "CommandFailed",
    "CommandNotFound",
    "CommandServer",
    "CommandTimeout",
    "CpuFacts",
    "DictSource",
    "Dimm",
    "Disk",
    "FactSource",
    "Facts",
    "LinuxSource",
    "LldpNeighbour",
    "MemoryFacts",
    "Nic",
    "SourceError",
    "Status",
    "Step",
    "SystemFacts",
    "collect",
]
