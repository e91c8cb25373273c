"""Agent facts of a simulated server, in the shape `metalyard.agent.facts.Facts.to_dict()`
gives (a test builds them from a real `Facts` to keep the shape honest)."""

from metalyard.agent.facts import Facts

GIB = 1024**3


def machine_facts(
    serial: str,
    *,
    memory_gib: int = 512,
    cpu_model: str = "Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz",
    sockets: int = 2,
    disks_gb: tuple[int, ...] = (960, 960),
    nics: tuple[tuple[str, str, int, bool], ...] = (
        ("eno1", "52:54:00:10:00:01", 25000, True),
        ("eno2", "52:54:00:10:00:02", 25000, True),
    ),
    bios: str = "2.1.0",
    failing_disk: str | None = None,
) -> dict:
    dimm = 32 * GIB
    facts = {
        "system": {
            "manufacturer": "Acme",
            "product": "R750",
            "serial": serial,
            "bios_version": bios,
        },
        "cpu": {
            "model": cpu_model,
            "sockets": sockets,
            "cores": 32 * sockets,
            "threads": 64 * sockets,
        },
        "memory": {
            "total_bytes": memory_gib * GIB - 3 * GIB,
            "dimms": [{"locator": f"A{n}", "size_bytes": dimm} for n in range(memory_gib // 32)],
        },
        "disks": [
            {
                "name": f"sd{chr(97 + n)}",
                "path": f"/dev/sd{chr(97 + n)}",
                "size_bytes": size * 10**9,
                "healthy": f"sd{chr(97 + n)}" != failing_disk,
            }
            for n, size in enumerate(disks_gb)
        ],
        "nics": [
            {"name": name, "mac": mac, "link_up": up, "speed_mbps": speed if up else None}
            for name, mac, speed, up in nics
        ],
        "lldp": [],
        "bmc": None,
        "missing": {},
    }
    return Facts.from_dict(facts).to_dict()
