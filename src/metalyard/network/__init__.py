"""Network: IP address management (prefixes, reserved ranges, allocations)."""

from metalyard.network.addressing import OFFSET_LIMIT, PrefixRole

__all__ = ["OFFSET_LIMIT", "PrefixRole"]
