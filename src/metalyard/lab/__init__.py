"""A simulated datacenter for trying metalyard without hardware: `metalyard lab`.

`machines` are servers as the agent's fact collectors see them (a profile plus faults),
`bmcs` their BMCs (the fake driver, or sushy-tools' Redfish emulator), `datacenter` runs
them (PXE, the real agent), `controlplane` starts `metalyard serve`, `scenario` orders and
racks them through the SDK, `runner` drives one run, and `view` shows it.
"""
