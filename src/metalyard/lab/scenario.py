"""What the lab buys and racks, and how metalyard is told of it: through the SDK, the way a
site-operations team would (a purchase request approved by a second person, an order with
its packing list and delivery stage, racks, prefixes, BMC credentials, servers enrolled as
they are racked)."""

import math
import random
import secrets
from dataclasses import dataclass
from datetime import date

from metalyard.auth.changes.schemas import ChangeRequestOut
from metalyard.errors import InvalidInput
from metalyard.lab.bmcs import BMC_USER, Bmcs
from metalyard.lab.machines import NIC_NAMES, Fault, SimulatedMachine, Spec
from metalyard.sdk import Client

SITE = "lab1"
VENDOR = "acme"
PROFILE = "r650"
RACK_UNITS = 42
SERVERS_PER_RACK = 40
"""The top units hold the switches."""
PREFIXES = (
    ("10.63.0.0/16", "discovery", "10.63.0.1"),
    ("10.64.0.0/16", "provisioning", "10.64.0.1"),
    ("10.255.0.0/16", "bmc", "10.255.0.1"),
)
CHECKER = "checker"
"""The second person who approves the purchase request (maker-checker)."""


@dataclass(frozen=True)
class Plan:
    servers: int
    racks: int
    fault_rate: float
    seed: int = 0


def default_racks(servers: int) -> int:
    return max(1, math.ceil(servers / SERVERS_PER_RACK))


def build(plan: Plan) -> list[SimulatedMachine]:
    """The servers, one per rack unit from the bottom, with the faults spread over them:
    `fault_rate` of the servers get one fault each, every kind in turn."""
    if plan.servers < 1:
        raise InvalidInput("the lab needs at least one server")
    if not 0 <= plan.fault_rate <= 1:
        raise InvalidInput(f"--faults is a share of the servers, 0 to 1, not {plan.fault_rate:g}")
    per_rack = math.ceil(plan.servers / plan.racks)
    if per_rack > SERVERS_PER_RACK:
        raise InvalidInput(
            f"{plan.servers} servers in {plan.racks} racks is {per_rack} a rack; a rack holds "
            f"{SERVERS_PER_RACK}: use --racks {default_racks(plan.servers)} or more"
        )
    spec = Spec()
    machines = []
    for index in range(plan.servers):
        rack = f"r{index // per_rack + 1:02d}"
        machines.append(
            SimulatedMachine(
                serial=f"LAB{index + 1:05d}",
                index=index + 1,
                rack=rack,
                position=index % per_rack + 1,
                switch=f"sw-{rack}",
                spec=spec,
            )
        )
    faulty = random.Random(plan.seed).sample(machines, round(plan.servers * plan.fault_rate))
    for n, machine in enumerate(faulty):
        machine.faults.add(list(Fault)[n % len(Fault)])
    return machines


def known(machines: list[SimulatedMachine]) -> list[SimulatedMachine]:
    """The servers on the vendor's packing list: the ones site-ops can scan in at racking."""
    return [m for m in machines if Fault.UNKNOWN_SERIAL not in m.faults]


def order(client: Client, machines: list[SimulatedMachine], racks: int) -> str:
    """Everything metalyard needs before the delivery arrives; the order's number."""
    spec = machines[0].spec
    client.sites.create(name=SITE, description="the lab's simulated datacenter")
    for n in range(1, racks + 1):
        name = f"r{n:02d}"
        client.racks.create(
            site=SITE, name=name, height_u=RACK_UNITS, mgmt_switch=f"sw-{name}", bmc_capacity=16
        )
    for cidr, role, gateway in PREFIXES:
        client.prefixes.create(site=SITE, cidr=cidr, role=role, gateway=gateway)
    client.vendors.create(name=VENDOR, description="the lab's server vendor")
    client.profiles.create(VENDOR, PROFILE, spec=spec.profile(), description="1U compute")
    line = {"vendor": VENDOR, "profile": PROFILE, "version": 1, "quantity": len(machines)}
    request = client.purchase_requests.create(f"{len(machines)} servers for {SITE}", [line])
    approval = client.purchase_requests.approve(request.id, reason="capacity for the lab")
    if isinstance(approval, ChangeRequestOut):  # maker-checker, as by default
        _approve_as_checker(client, approval.id)
    (number,) = client.purchase_requests.get(request.id).orders
    client.purchase_orders.transition(number, "ordered", reason="sent to the vendor")
    client.purchase_orders.add_stage(number, len(machines), date.today())
    client.purchase_orders.move_stage(number, 1, "shipped")
    packing = "serial\n" + "".join(f"{m.serial}\n" for m in known(machines))
    client.purchase_orders.import_serials(number, packing)
    return number


def _approve_as_checker(client: Client, change_id: int) -> None:
    """A second person, with a write token of their own, approves the change request."""
    password = secrets.token_urlsafe(16)
    client.users.create(name=CHECKER, role="write", password=password)
    anonymous = Client(client.url)
    try:
        token = anonymous.tokens.create("write", basic=(CHECKER, password)).token
    finally:
        anonymous.close()
    checker = Client(client.url, token)
    try:
        checker.change_requests.approve(change_id, comment="checked")
    finally:
        checker.close()


def rack(client: Client, number: str, machines: list[SimulatedMachine], bmcs: Bmcs) -> None:
    """The delivery is racked: each server scanned in with its slot, BMC and MACs."""
    client.purchase_orders.move_stage(number, 1, "delivered")
    client.bmc_credentials.create(
        "lab", username=BMC_USER, password=bmcs.password, networks=list(bmcs.networks)
    )
    client.assets.import_([enrolment(machine, bmcs) for machine in known(machines)])
    client.purchase_orders.move_stage(number, 1, "racked")


def enrolment(machine: SimulatedMachine, bmcs: Bmcs) -> dict:
    """What site-ops record of a racked server."""
    return {
        "serial": machine.serial,
        "vendor": machine.spec.manufacturer,
        "model": machine.spec.product,
        "site": SITE,
        "rack": machine.rack,
        "rack_position_u": machine.position,
        "bmc_driver": bmcs.driver,
        "bmc_address": bmcs.target(machine).address,
        "bmc_credential": "lab",
        "interfaces": [
            {"name": name, "mac": mac} for name, mac in zip(NIC_NAMES, machine.macs, strict=True)
        ],
    }
